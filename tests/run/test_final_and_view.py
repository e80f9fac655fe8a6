from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from run_fakes import fake_config, fake_parts

from tinyevo.run.engine import start_run
from tinyevo.run.retraining import pareto_front, select_for_retraining
from tinyevo.run.view import open_run, record_json
from tinyevo.strategies.base import Objective, Problem, Status, Trial

OBJS = (Objective("acc", "max"), Objective("sram", "min"))


def _trial(n: int, acc: float, sram: float, status: Status = Status.OK) -> Trial:
    return Trial(number=n, genome=f"g{n}", status=status, metrics={"acc": acc, "sram": sram})


points = st.lists(
    st.tuples(st.integers(0, 5).map(float), st.integers(0, 5).map(float)), min_size=0, max_size=12
)


def _brute_force_front(pts: list[tuple[float, float]]) -> set[tuple[float, float]]:
    """Independent oracle for OBJS (acc max, sram min): a point is on the front iff no other point has acc >= and
    sram <= with at least one strict."""
    return {
        (a, s) for a, s in pts
        if not any(a2 >= a and s2 <= s and (a2 > a or s2 < s) for a2, s2 in pts)
    }


@settings(max_examples=60, deadline=None)
@given(pts=points)
def test_pareto_front_is_exactly_the_non_dominated_set(pts: list[tuple[float, float]]) -> None:
    trials = [_trial(i, a, s) for i, (a, s) in enumerate(pts)]
    front = pareto_front(trials, OBJS)
    front_points = [(t.metrics["acc"], t.metrics["sram"]) for t in front]
    assert len(set(front_points)) == len(front)  # equal points appear once
    assert set(front_points) == _brute_force_front(pts)
    assert front_points == sorted(front_points, key=lambda p: (-p[0], p[1]))  # best accuracy first
    firsts = {}
    for t in trials:
        firsts.setdefault((t.metrics["acc"], t.metrics["sram"]), t.number)
    assert all(firsts[p] == t.number for p, t in zip(front_points, front, strict=True))  # first occurrence kept


def test_pareto_front_on_fixed_random_sets() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        pts = [(float(a), float(s)) for a, s in rng.integers(0, 4, size=(int(rng.integers(1, 9)), 2))]
        trials = [_trial(i, a, s) for i, (a, s) in enumerate(pts)]
        assert {(t.metrics["acc"], t.metrics["sram"]) for t in pareto_front(trials, OBJS)} == _brute_force_front(pts)


def test_selection_skips_infeasible_and_failed() -> None:
    problem = Problem(objectives=(Objective("acc"),))
    trials = [
        _trial(0, 0.9, 5, Status.INFEASIBLE),
        _trial(1, 0.5, 1),
        _trial(2, 0.7, 3),
        _trial(3, 0.99, 1, Status.FAILED),
    ]
    assert [t.number for t in select_for_retraining(problem, trials, pareto=False, max_models=3)] == [2]
    assert [
        t.number for t in select_for_retraining(problem, trials, pareto=True, max_models=3, objectives=OBJS)
    ] == [2, 1]
    assert [
        t.number for t in select_for_retraining(problem, trials, pareto=True, max_models=1, objectives=OBJS)
    ] == [2]
    assert select_for_retraining(problem, trials[:1], pareto=False, max_models=1) == []


def test_view_of_a_run(tmp_path: Path) -> None:
    cfg = fake_config(budget=8)
    start_run(cfg, run_dir=tmp_path / "r", parts=fake_parts(cfg))
    view = open_run(tmp_path / "r")
    assert len(view.records) == sum(view.counts().values())
    ranked = view.ranked()
    assert ranked[0] == view.best() and ranked[0].status is Status.OK
    curve = view.best_so_far()
    assert [v for _, v in curve] == sorted(v for _, v in curve)  # non-decreasing
    assert curve[-1][1] == max(t.metrics["val_acc"] for t in view.trials if t.ok)
    assert view.bounds == {"macs": 12.0}
    obj = record_json(view.records[0])
    assert {"genome", "status", "metrics", "cost", "parents", "parent_ids"} <= set(obj)


def test_pareto_axes_come_from_the_problem() -> None:
    from tinyevo.run.assembly import pareto_objectives
    from tinyevo.strategies.base import Constraint

    acc = Objective("val_acc")
    bounded = Problem(objectives=(acc,), constraints=(
        Constraint("macs", upper=5.0), Constraint("flash_bytes", upper=9.0), Constraint("params", lower=1.0),
        Constraint("macs", upper=7.0, hard=False)))
    assert pareto_objectives(bounded) == (acc, Objective("macs", "min"), Objective("flash_bytes", "min"))
    assert pareto_objectives(Problem(objectives=(acc,))) == (acc,)  # nothing bounded: the objective alone
    assert pareto_objectives(Problem(objectives=OBJS, constraints=bounded.constraints)) == OBJS


def test_the_run_model_follows_the_objective() -> None:
    from tinyevo.run.retraining import best_retrained
    from tinyevo.storage import RetrainedModel

    finals = [RetrainedModel(1, "g1", {"val_acc": 0.9, "latency_ms": 5.0}, "a"),
              RetrainedModel(2, "g2", {"val_acc": 0.8, "latency_ms": 2.0}, "b"),
              RetrainedModel(3, "g3", {"val_acc": float("nan")}, "c")]
    assert best_retrained(finals).trial == 1  # default: the highest val_acc
    assert best_retrained(finals, Objective("latency_ms", "min")).trial == 2
    assert best_retrained(finals, Objective("val_acc", "min")).trial == 2  # NaN / missing rank last either way
    assert best_retrained([], Objective("latency_ms", "min")) is None
