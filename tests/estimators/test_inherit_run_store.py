"""The ``inherit`` estimator keeps its weights in the run's store (``EvalContext.store_dir``), so that a child
inherits the same parent weights whichever worker process trained the parent, and after a resume."""

from __future__ import annotations

from pathlib import Path

from estimator_helpers import conv_net

from tinyevo.data import Dataset
from tinyevo.estimators import EvalContext, TrainConfig, create_estimator

CFG = TrainConfig(epochs=5, batch_size=32)  # the preset trains a fifth of it: one epoch


def test_a_child_on_another_worker_inherits_exactly_as_on_the_same_one(data: Dataset, tmp_path: Path) -> None:
    store = str(tmp_path / "weights")
    one = create_estimator("inherit", config=CFG)  # one process: parent and child on the same worker
    parent_ctx = EvalContext(genome="parent", store_dir=store)
    child_ctx = EvalContext(genome="child", parents=("parent",), store_dir=store)
    p1 = one.evaluate(conv_net(), data, seed=0, context=parent_ctx)
    c1 = one.evaluate(conv_net(), data, seed=1, context=child_ctx)
    assert c1["inherited_fraction"] == 1.0

    store2 = str(tmp_path / "weights2")
    a = create_estimator("inherit", config=CFG)  # worker A trains the parent ...
    b = create_estimator("inherit", config=CFG)  # ... worker B (or a resumed run) the child
    p2 = a.evaluate(conv_net(), data, seed=0, context=EvalContext(genome="parent", store_dir=store2))
    c2 = b.evaluate(conv_net(), data, seed=1,
                    context=EvalContext(genome="child", parents=("parent",), store_dir=store2))
    assert p2["val_acc"] == p1["val_acc"]
    assert c2["inherited_fraction"] == 1.0
    assert c2["val_acc"] == c1["val_acc"]
    assert (tmp_path / "weights2").is_dir() and len(list((tmp_path / "weights2").glob("*.pt"))) == 2
