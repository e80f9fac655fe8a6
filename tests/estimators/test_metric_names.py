"""Each registered estimator says which metrics it returns (what a run may optimise): checked against what its
``evaluate`` actually returns, for every registered estimator and the optional components."""

from __future__ import annotations

import pytest
from estimator_helpers import conv_net

from tinyevo.data import Dataset
from tinyevo.estimators import ESTIMATORS, EvalContext, TrainConfig, create_estimator, metric_names

TINY = TrainConfig(epochs=1, batch_size=32, threads=1)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_declared_metric_names_are_what_evaluate_returns(name: str, data: Dataset) -> None:
    est = create_estimator(name, config=TINY)
    got = est.evaluate(conv_net(), data, seed=0, context=EvalContext(genome="g"))
    assert metric_names(est) == frozenset(got)


@pytest.mark.parametrize("spec, config", [
    ("train", TrainConfig(epochs=1, batch_size=32, threads=1, prune_ratio=0.5, prune_finetune_epochs=0)),
    ("naswot+lc", TINY),
])
def test_compositions_declare_their_metrics(spec: str, config: TrainConfig, data: Dataset) -> None:
    est = create_estimator(spec, config=config)
    got = est.evaluate(conv_net(), data, seed=0, context=EvalContext(genome="g"))
    assert metric_names(est) == frozenset(got)


def test_an_estimator_that_does_not_say_gives_none() -> None:
    class Mine:
        name = "mine"

        def evaluate(self, ir, data, *, seed, context=None):  # type: ignore[no-untyped-def]
            return {"score": 1.0}

    assert metric_names(Mine()) is None  # type: ignore[arg-type]
