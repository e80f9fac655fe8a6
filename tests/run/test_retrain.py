"""``[final] top_k`` / ``workers``: choosing and retraining several models, the run's model (best final val_acc),
and :func:`retrain_run` on a finished search (fast fakes: nothing is trained)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from run_fakes import fake_config, fake_parts

from tinyevo.errors import ConfigError, EstimationError
from tinyevo.run.assembly import default_threads, derive_seed
from tinyevo.run.config import (
    DataConfig,
    FinalConfig,
    RunConfig,
    build_config,
    load_config_file,
    with_final_options,
)
from tinyevo.run.engine import RunAssembly, load_run_config, retrain_run, start_run
from tinyevo.run.retraining import (
    RetrainPlan,
    RetrainTask,
    best_retrained,
    retrain_many,
    select_for_retraining,
)
from tinyevo.run.teacher import Teacher
from tinyevo.storage import DB_NAME, RetrainedModel, SQLiteStorage
from tinyevo.strategies.base import Objective, Problem, Status, Trial

# --- choosing the models ------------------------------------------------------------------------------------

PROBLEM = Problem(objectives=(Objective("acc"),))


def _trial(n: int, acc: float, status: Status = Status.OK) -> Trial:
    return Trial(number=n, genome=f"g{n}", status=status, metrics={"acc": acc})


TRIALS = [
    _trial(0, 0.5),
    _trial(1, 0.9),
    _trial(2, 0.95, Status.INFEASIBLE),
    _trial(3, 0.9),
    _trial(4, math.nan),
    _trial(5, 0.7),
    _trial(6, 0.99, Status.FAILED),
    _trial(7, 0.9),
]


@pytest.mark.parametrize(
    ("top_k", "expected"),
    [(1, [1]), (2, [1, 3]), (3, [1, 3, 7]), (4, [1, 3, 7, 5]), (6, [1, 3, 7, 5, 0, 4]), (50, [1, 3, 7, 5, 0, 4])],
)
def test_top_k_best_first_ties_keep_the_earlier_trial(top_k: int, expected: list[int]) -> None:
    chosen = select_for_retraining(PROBLEM, TRIALS, pareto=False, max_models=1, top_k=top_k)
    assert [t.number for t in chosen] == expected  # only feasible evaluated trials; NaN ranks last


def test_top_k_default_is_the_single_best() -> None:
    assert [t.number for t in select_for_retraining(PROBLEM, TRIALS, pareto=False, max_models=5)] == [1]


def test_pareto_ignores_top_k() -> None:
    objs = (Objective("acc"), Objective("sram", "min"))
    trials = [Trial(number=i, genome=f"g{i}", status=Status.OK, metrics={"acc": a, "sram": s})
              for i, (a, s) in enumerate([(0.9, 5.0), (0.8, 1.0), (0.7, 2.0), (0.6, 0.5)])]
    chosen = select_for_retraining(PROBLEM, trials, pareto=True, max_models=2, objectives=objs, top_k=4)
    assert [t.number for t in chosen] == [0, 1]


def _final(trial: int, **metrics: float) -> RetrainedModel:
    return RetrainedModel(trial=trial, genome=f"g{trial}", metrics=metrics, weights=f"final/trial-{trial:04d}/model.pt")


def test_best_final_is_the_highest_val_acc() -> None:
    finals = [_final(3, val_acc=0.7, test_acc=0.99), _final(1, val_acc=0.8, test_acc=0.1), _final(5, val_acc=0.6)]
    assert best_retrained(finals).trial == 1  # type: ignore[union-attr]  # the test split plays no part


def test_best_final_nan_and_missing_val_acc_rank_last() -> None:
    assert best_retrained([_final(0, val_acc=math.nan), _final(1, test_acc=0.9), _final(2, val_acc=0.1)]).trial == 2  # type: ignore[union-attr]
    assert best_retrained([_final(4, val_acc=math.inf), _final(2, val_acc=0.1)]).trial == 2  # type: ignore[union-attr]
    # nothing to compare: the earliest trial
    assert best_retrained([_final(6, val_acc=math.nan), _final(4, test_acc=0.5)]).trial == 4  # type: ignore[union-attr]


def test_best_final_ties_keep_the_earlier_trial() -> None:
    assert best_retrained([_final(9, val_acc=0.8), _final(2, val_acc=0.8), _final(5, val_acc=0.8)]).trial == 2  # type: ignore[union-attr]
    assert best_retrained([_final(9, val_acc=0.8), _final(2, val_acc=0.5), _final(5, val_acc=0.8)]).trial == 5  # type: ignore[union-attr]


def test_best_final_of_nothing_is_none() -> None:
    assert best_retrained([]) is None


# --- [final] top_k / workers in the config ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["top_k", "workers", "max_models"])
@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True, None])
def test_final_config_rejects_bad_counts(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"final {field} must be an integer >= 1"):
        FinalConfig(**{field: value})  # type: ignore[arg-type]


def test_final_config_defaults() -> None:
    fc = FinalConfig()
    assert fc.top_k == 1 and fc.workers == 1


def test_config_file_top_k_and_workers_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[final]\ntop_k = 3\nworkers = 2\nepochs = 5\ndevice = "auto"\n')
    cfg = build_config(load_config_file(path))
    assert (cfg.final.top_k, cfg.final.workers) == (3, 2)
    assert cfg.final.train["epochs"] == 5 and cfg.final.train["device"] == "auto"
    assert "top_k" not in cfg.final.train and "workers" not in cfg.final.train  # not training options
    stored = json.loads(json.dumps(cfg.to_json()))  # as stored in the run database
    assert stored["final"]["top_k"] == 3 and stored["final"]["workers"] == 2
    assert RunConfig.from_json(stored) == cfg


def test_config_file_teacher_and_distillation_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[final]\nteacher = "runs/big:7"\ndistill_alpha = 0.5\ndistill_temperature = 2.0\n')
    cfg = build_config(load_config_file(path))
    assert cfg.final.teacher == Teacher(("runs/big:7",)) and "teacher" not in cfg.final.train
    assert cfg.final.train["distill_alpha"] == 0.5 and cfg.final.train["distill_temperature"] == 2.0
    stored = json.loads(json.dumps(cfg.to_json()))
    assert stored["final"]["teacher"] == "runs/big:7" and RunConfig.from_json(stored) == cfg
    assert with_final_options(cfg, teacher="other").final.teacher == Teacher(("other",))
    assert with_final_options(cfg, teacher=None).final.teacher == Teacher(("runs/big:7",))  # None = unchanged
    assert build_config({}).final.teacher is None


def test_a_list_of_teachers_is_an_ensemble_and_a_list_of_one_is_that_one(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[final]\nteacher = ["runs/big:7", "runs/other"]\n')
    cfg = build_config(load_config_file(path))
    assert cfg.final.teacher == Teacher(("runs/big:7", "runs/other"))
    stored = json.loads(json.dumps(cfg.to_json()))
    assert stored["final"]["teacher"] == ["runs/big:7", "runs/other"] and RunConfig.from_json(stored) == cfg
    assert with_final_options(cfg, teacher=["one"]).final.teacher == Teacher(("one",))
    assert build_config({"final": {"teacher": ["x", "y"]}}).final.teacher == Teacher(("x", "y"))


@pytest.mark.parametrize("teacher", ["", "  ", 3, [], ["a", ""], ["a", 3], [["a"]]])
def test_a_bad_teacher_in_the_config_is_a_config_error(teacher: object) -> None:
    with pytest.raises(ConfigError, match="final teacher must be a run directory"):
        build_config({"final": {"teacher": teacher}})


def test_parse_teacher() -> None:
    from tinyevo.run.retraining import parse_teacher

    assert parse_teacher("runs/big") == (Path("runs/big"), None)
    assert parse_teacher("runs/big:12") == (Path("runs/big"), 12)
    assert parse_teacher("C:/runs/big") == (Path("C:/runs/big"), None)  # not a trial number
    assert parse_teacher("runs/v1:x") == (Path("runs/v1:x"), None)


@pytest.mark.parametrize(("table", "match"), [({"top_k": 0}, "top_k"), ({"workers": "4"}, "workers"),
                                               ({"top_k": 2.5}, "top_k")])
def test_bad_top_k_or_workers_in_a_config_file(table: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config({"final": table})


def test_configs_stored_before_top_k_still_load() -> None:
    stored = json.loads(json.dumps(build_config({"final": {"epochs": 4}}).to_json()))
    del stored["final"]["top_k"], stored["final"]["workers"]
    cfg = RunConfig.from_json(stored)
    assert (cfg.final.top_k, cfg.final.workers) == (1, 1) and cfg.final.train["epochs"] == 4


# --- with_final_options -------------------------------------------------------------------------------------


def test_with_final_options_overrides_train_options_and_keeps_the_rest() -> None:
    cfg = build_config({"final": {"epochs": 3, "lr": 0.05, "pareto": False}})
    new = with_final_options(cfg, train={"epochs": 7, "device": "auto"}, top_k=2, workers=3, pareto=None)
    assert new.final.train["epochs"] == 7 and new.final.train["device"] == "auto"
    assert new.final.train["lr"] == 0.05 and new.final.train["batch_size"] == cfg.final.train["batch_size"]
    assert (new.final.top_k, new.final.workers, new.final.pareto) == (2, 3, False)
    assert new.final.enabled == cfg.final.enabled and new.final.max_models == cfg.final.max_models
    assert replace(new, final=cfg.final) == cfg  # only [final] changed
    assert cfg.final.train["epochs"] == 3 and cfg.final.top_k == 1  # the original is untouched
    assert with_final_options(cfg) == cfg and with_final_options(cfg, top_k=None, workers=None) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"foo": 1}, r"unknown \[final\] option\(s\): foo"),
        ({"enabled": False}, r"unknown \[final\] option"),
        ({"train": {"foo": 1}}, "unknown training option"),
        ({"train": {"prune_ratio": 0.25}}, "prune_ratio in \\[final\\] is not supported"),
        ({"train": {"device": "gpu"}}, "unknown training device"),
        ({"train": {"epochs": 0}}, "final.epochs must be >= 1, got 0"),
        ({"top_k": 0}, "top_k"),
        ({"workers": 0}, "workers"),
    ],
)
def test_with_final_options_rejects(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        with_final_options(build_config(None), **kwargs)


# --- retraining ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedTrainer:
    """A final "training" that trains nothing (picklable, for worker processes): ``val_acc`` by seed from
    ``val_acc`` (default 0.5), failing for ``fail_seed``; the metrics also record the process id, the torch
    threads and the epochs it was asked for."""

    val_acc: tuple[tuple[int, float], ...] = ()
    fail_seed: int | None = None

    def __call__(self, ir: Any, data: Any, *, config: Any, seed: int) -> Any:
        import torch

        if seed == self.fail_seed:
            raise RuntimeError(f"boom for seed {seed}")
        torch.manual_seed(seed)
        return SimpleNamespace(
            model=torch.nn.Linear(3, 2),
            history=(),
            metrics={
                "val_acc": dict(self.val_acc).get(seed, 0.5),
                "test_acc": 0.75,
                "pid": float(os.getpid()),
                "threads": float(config.threads or 0),
                "epochs": float(config.epochs),
            },
        )


@pytest.fixture(scope="module")
def tiny_npz(make_tiny_npz: Callable[..., Path]) -> Path:
    """A real data file for worker processes to load (the fake trainer ignores its contents)."""
    return make_tiny_npz(30, seed=0)


@dataclass
class Searched:
    run_dir: Path
    config: RunConfig
    parts: RunAssembly
    ranked: list[int]  # the feasible trials, best first (what top_k picks)


@pytest.fixture
def searched(tmp_path: Path, tiny_npz: Path) -> Searched:
    """A finished search (fakes, final retraining off)."""
    config = replace(fake_config(budget=8), data=DataConfig(spec=str(tiny_npz)))
    parts = fake_parts(config)
    run_dir = tmp_path / "run"
    start_run(config, run_dir=run_dir, parts=parts)
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        trials = [r.trial for r in s.records()]
        assert s.finals() == [] and s.get_state("phase") == "done"
    ranked = [t.number for t in select_for_retraining(parts.problem, trials, pareto=False, max_models=1,
                                                      top_k=len(trials))]
    assert len(ranked) >= 3, "the fake search should give at least three feasible trials"
    return Searched(run_dir, config, parts, ranked)


def _finals(run_dir: Path) -> dict[int, RetrainedModel]:
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        return {f.trial: f for f in s.finals()}


def test_retrain_top_2_with_2_workers_in_a_process_pool(searched: Searched) -> None:
    cfg = with_final_options(searched.config, top_k=2, workers=2, train={"epochs": 3})
    parts = replace(searched.parts, trainer=ScriptedTrainer(), data=None)
    events: list[str] = []
    stored = load_run_config(searched.run_dir)
    finals = retrain_run(searched.run_dir, config=cfg, parts=parts, progress=lambda ev: events.append(ev.kind))
    assert sorted(f.trial for f in finals) == sorted(searched.ranked[:2])
    assert sorted(_finals(searched.run_dir)) == sorted(searched.ranked[:2])
    for f in finals:
        assert f.metrics["pid"] != os.getpid()  # trained in a worker process
        assert f.metrics["threads"] == default_threads(2)  # the CPUs shared between the workers
        assert f.metrics["epochs"] == 3.0
        assert (searched.run_dir / f.weights).is_file()
        doc = json.loads((searched.run_dir / f.weights).with_name("metrics.json").read_text())
        assert doc["trial"] == f.trial and doc["train_config"]["epochs"] == 3
        assert f.genome == (searched.run_dir / f.weights).with_name("genome.txt").read_text().strip()
    assert events.count("final-model") == 2 and "final-start" in events
    with SQLiteStorage(searched.run_dir / DB_NAME, readonly=True) as s:
        assert s.get_state("phase") == "done"
    # the changed [final] options are not stored with the run
    assert load_run_config(searched.run_dir) == stored and stored.final.top_k == 1


def test_keep_done_skips_retrained_models_and_force_retrains_them(searched: Searched) -> None:
    parts = replace(searched.parts, trainer=ScriptedTrainer())
    first, second, third = searched.ranked[:3]
    one = retrain_run(searched.run_dir, config=with_final_options(searched.config, top_k=1), parts=parts)
    assert [f.trial for f in one] == [first] and one[0].metrics["threads"] == 0  # one at a time: threads unset
    before = _finals(searched.run_dir)
    time.sleep(0.01)

    cfg3 = with_final_options(searched.config, top_k=3)
    kept = retrain_run(searched.run_dir, config=cfg3, parts=parts, keep_done=True)
    assert sorted(f.trial for f in kept) == sorted([first, second, third])
    after = _finals(searched.run_dir)
    assert after[first].created_at == before[first].created_at  # skipped
    assert second not in before and third not in before and sorted(after) == sorted([first, second, third])

    time.sleep(0.01)
    forced = retrain_run(searched.run_dir, config=with_final_options(cfg3, top_k=2, train={"epochs": 5}),
                         parts=parts)
    assert sorted(f.trial for f in forced) == sorted([first, second])  # the chosen trials' models only
    again = _finals(searched.run_dir)
    assert again[first].created_at > after[first].created_at and again[second].created_at > after[second].created_at
    assert again[first].metrics["epochs"] == 5.0
    assert again[third] == after[third]  # not chosen this time: left as it was


def test_retrain_of_an_unfinished_search_is_a_config_error(searched: Searched) -> None:
    with SQLiteStorage(searched.run_dir / DB_NAME) as s:
        s.set_state("phase", "search")
    with pytest.raises(ConfigError, match="has not finished.*tinyevo resume"):
        retrain_run(searched.run_dir, parts=replace(searched.parts, trainer=ScriptedTrainer()))
    assert _finals(searched.run_dir) == {}


def test_retrain_of_a_missing_run(tmp_path: Path) -> None:
    from tinyevo.errors import StorageError

    with pytest.raises(StorageError, match="not a tinyevo run directory"):
        retrain_run(tmp_path / "nope")


def test_retrain_with_the_stored_final_options(searched: Searched) -> None:
    """No config given: the stored one (top_k 1); final retraining disabled at search time does not matter."""
    assert searched.config.final.enabled is False
    finals = retrain_run(searched.run_dir, parts=replace(searched.parts, trainer=ScriptedTrainer()))
    assert [f.trial for f in finals] == searched.ranked[:1] and finals[0].metrics["epochs"] == 1.0


def test_the_run_model_is_the_best_final_val_acc(searched: Searched) -> None:
    """export's default trial is the retrained model with the best final val_acc, not the search's best."""
    from tinyevo.run.export import find_trial

    first, second, third = searched.ranked[:3]
    seed = searched.config.seed
    trainer = ScriptedTrainer(val_acc=((derive_seed(seed, first, 1), 0.6), (derive_seed(seed, second, 1), 0.8),
                                       (derive_seed(seed, third, 1), 0.8)))
    finals = retrain_run(searched.run_dir, config=with_final_options(searched.config, top_k=3),
                         parts=replace(searched.parts, trainer=trainer))
    assert best_retrained(finals).trial == min(second, third)  # type: ignore[union-attr]  # tie: earlier trial
    _, trial, weights = find_trial(searched.run_dir)
    assert trial.number == min(second, third) and weights.is_file()
    _, trial, _ = find_trial(searched.run_dir, trial=first)  # an explicit trial still wins
    assert trial.number == first


def _tasks(searched: Searched, trainer: ScriptedTrainer, n: int) -> list[RetrainTask]:
    from tinyevo.run.assembly import train_config

    with SQLiteStorage(searched.run_dir / DB_NAME, readonly=True) as s:
        by_number = {r.number: r.trial for r in s.records()}
    return [
        RetrainTask(trial=by_number[k], space=searched.parts.space, train_config=train_config({"epochs": 1}),
                    seed=derive_seed(searched.config.seed, k, 1), run_dir=searched.run_dir, cost={},
                    data=SimpleNamespace(), trainer=trainer)
        for k in searched.ranked[:n]
    ]


def test_a_failed_retraining_names_its_trial_after_the_others_finish(searched: Searched) -> None:
    first, second, third = searched.ranked[:3]
    trainer = ScriptedTrainer(fail_seed=derive_seed(searched.config.seed, second, 1))
    committed: list[int] = []
    with pytest.raises(EstimationError, match=f"final retraining failed for trial {second}: RuntimeError: boom"):
        retrain_many(_tasks(searched, trainer, 3), workers=1, on_done=lambda m: committed.append(m.trial))
    assert committed == [first, third]


def test_retrain_many_one_worker_returns_models_in_order(searched: Searched) -> None:
    done = retrain_many(_tasks(searched, ScriptedTrainer(), 3), workers=1)
    assert [m.trial for m in done] == searched.ranked[:3]
    assert all(m.metrics["pid"] == os.getpid() for m in done)


# --- init = ["run:DIR[:K]"]: seeds from an earlier run ----------------------------------------------------------


def test_seeds_from_run_are_the_best_genomes_of_the_earlier_run(searched: Searched) -> None:
    from tinyevo.run.config import build_config, seeds_from_run
    from tinyevo.run.view import open_run

    view = open_run(searched.run_dir)
    by_number = {t.number: t.genome for t in view.trials}
    best_two = list(dict.fromkeys(by_number[n] for n in searched.ranked))[:2]
    assert seeds_from_run(f"run:{searched.run_dir}:2") == best_two
    assert len(seeds_from_run(f"run:{searched.run_dir}")) == min(10, len({by_number[n] for n in searched.ranked}))
    config = build_config({}, init=[f"run:{searched.run_dir}:2", "zoo"])
    assert config.init == (*best_two, "zoo")  # expanded: the new run stores the genomes themselves


@pytest.mark.parametrize("item", ["run:", "run:/no/such/run", "run:{run}:0"])
def test_bad_seeds_from_run_are_config_errors(searched: Searched, item: str) -> None:
    from tinyevo.run.config import seeds_from_run

    with pytest.raises(ConfigError, match="init item"):
        seeds_from_run(item.format(run=searched.run_dir))


# --- --continue: one more cycle from the earlier final weights -------------------------------------------------


@dataclass(frozen=True)
class ContinuingTrainer:
    """Records the state it starts from: the mean of the earlier weights (or NaN from scratch)."""

    val_acc: float = 0.5

    def __call__(self, ir: Any, data: Any, *, config: Any, seed: int, init_state: Any = None) -> Any:
        import torch

        model = torch.nn.Linear(3, 2)
        start = math.nan
        if init_state is not None:
            model.load_state_dict(init_state)
            start = float(init_state["weight"].mean())
        with torch.no_grad():
            model.weight.add_(1.0)  # "training" moves the weights
        return SimpleNamespace(model=model, history=(), metrics={"val_acc": self.val_acc, "test_acc": 0.5,
                                                                  "epochs": float(config.epochs), "start": start})


def test_continue_starts_from_the_earlier_final_weights(searched: Searched) -> None:
    import torch

    best = searched.ranked[0]
    parts = replace(searched.parts, trainer=ContinuingTrainer())
    cfg = with_final_options(searched.config, train={"epochs": 3})
    retrain_run(searched.run_dir, config=cfg, parts=parts, trials=[best])
    first = _finals(searched.run_dir)[best]
    w1 = torch.load(searched.run_dir / first.weights, weights_only=True)["weight"]
    assert math.isnan(first.metrics["start"])  # from scratch
    cfg2 = with_final_options(searched.config, train={"epochs": 2})
    retrain_run(searched.run_dir, config=cfg2, parts=parts, trials=[best], plan=RetrainPlan(start="weights"))
    second = _finals(searched.run_dir)[best]
    assert second.metrics["start"] == pytest.approx(float(w1.mean()))  # started where the first cycle ended
    assert second.metrics["epochs_total"] == 5.0  # 3 + 2 over both cycles
    doc = json.loads((searched.run_dir / second.weights).with_name("metrics.json").read_text())
    assert doc["continued_from"]["epochs"] == 3.0


def test_keep_best_keeps_the_earlier_model_when_the_new_cycle_validates_worse(searched: Searched) -> None:
    import torch

    best = searched.ranked[0]
    run = searched.run_dir
    retrain_run(run, parts=replace(searched.parts, trainer=ContinuingTrainer(0.5)), trials=[best])
    model = run / _finals(run)[best].weights
    w1 = torch.load(model, weights_only=True)["weight"]

    def cycle(val_acc: float, keep_best: bool) -> RetrainedModel:
        plan = RetrainPlan(start="weights", accept="if_better" if keep_best else "always")
        retrain_run(run, parts=replace(searched.parts, trainer=ContinuingTrainer(val_acc)), trials=[best],
                    plan=plan)
        return _finals(run)[best]

    kept = cycle(0.4, keep_best=True)
    assert kept.metrics["val_acc"] == 0.5 and torch.equal(torch.load(model, weights_only=True)["weight"], w1)
    assert json.loads(model.with_name("metrics.json").read_text())["final"]["val_acc"] == 0.5
    rejected = model.parent / "rejected"
    assert json.loads((rejected / "metrics.json").read_text())["final"]["val_acc"] == 0.4
    assert torch.equal(torch.load(rejected / "model.pt", weights_only=True)["weight"], w1 + 1.0)
    assert not (model.parent / "checkpoint.pt").exists()
    assert cycle(0.6, keep_best=True).metrics["val_acc"] == 0.6  # better: it replaces the earlier model
    assert torch.equal(torch.load(model, weights_only=True)["weight"], w1 + 1.0)
    assert cycle(0.3, keep_best=False).metrics["val_acc"] == 0.3  # without keep_best every cycle replaces


def test_continue_without_earlier_weights_is_a_config_error(searched: Searched) -> None:
    parts = replace(searched.parts, trainer=ContinuingTrainer())
    with pytest.raises(ConfigError, match="no retrained weights to continue from"):
        retrain_run(searched.run_dir, parts=parts, trials=[searched.ranked[0]], plan=RetrainPlan(start="weights"))
    assert _finals(searched.run_dir) == {}


def test_a_search_asking_for_a_missing_gpu_fails_before_it_starts(tmp_path: Path) -> None:
    import torch

    from tinyevo.run.config import build_config

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = build_config({"train": {"epochs": 1, "device": "cuda"}}, budget=2)
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        start_run(config, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tinyevos_trainer_checkpoints_each_model_in_its_folder(searched: Searched,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from tinyevo import training
    from tinyevo.run.retraining import CHECKPOINT, model_dir

    seen: list[Path] = []

    def fake_train_model(ir: Any, data: Any, *, config: Any, seed: int, checkpoint: Path, **kw: Any) -> Any:
        seen.append(Path(checkpoint))
        Path(checkpoint).write_bytes(b"state")  # as if saved during the training
        return SimpleNamespace(model=torch.nn.Linear(3, 2), history=(), metrics={"val_acc": 0.5})

    monkeypatch.setattr(training, "train_model", fake_train_model)
    best = searched.ranked[0]
    retrain_run(searched.run_dir, parts=replace(searched.parts, trainer=None), trials=[best])
    assert seen == [model_dir(searched.run_dir, best) / CHECKPOINT]
    assert not seen[0].exists()  # removed once the model was saved
    assert (model_dir(searched.run_dir, best) / "model.pt").is_file()


def test_report_draws_the_final_curves_and_skips_unreadable_histories(searched: Searched) -> None:
    from tinyevo.run.report import write_report
    from tinyevo.run.retraining import model_dir

    parts = replace(searched.parts, trainer=ScriptedTrainer())
    finals = retrain_run(searched.run_dir, config=with_final_options(searched.config, top_k=2), parts=parts)
    curve = [{"epoch": 1.0, "val_acc": 0.4}, {"epoch": 2.0, "val_acc": 0.6}]
    (model_dir(searched.run_dir, finals[0].trial) / "history.json").write_text(json.dumps(curve))
    (model_dir(searched.run_dir, finals[1].trial) / "history.json").write_text("not json")
    files = write_report(searched.run_dir)
    assert any(p.name == "final_curves.png" for p in files.images)
    for f in finals:
        (model_dir(searched.run_dir, f.trial) / "history.json").unlink()
    again = write_report(searched.run_dir, out_dir=searched.run_dir / "r2")
    assert not any(p.name == "final_curves.png" for p in again.images)


def test_running_the_same_retrain_again_resumes_a_killed_training(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end on digits: a retraining killed after 2 of 4 epochs resumes from its checkpoint when the same
    retrain runs again, and ends with the weights of an uninterrupted retraining."""
    import functools

    import torch

    from tinyevo.run.config import build_config
    from tinyevo.run.retraining import CHECKPOINT, model_dir
    from tinyevo.training import train_ir as training

    config = build_config({"budget": 3, "train": {"epochs": 1}, "final": {"enabled": False}, "seed": 0})
    runs = {}
    for name in ("whole", "killed"):
        runs[name] = tmp_path / name
        start_run(config, run_dir=runs[name])
    final = with_final_options(config, train={"epochs": 4, "batch_size": 32})
    retrain_run(runs["whole"], config=final)

    monkeypatch.setattr(training, "fit", functools.partial(training.fit, checkpoint_every_s=0.0))
    real_fit = training.fit

    class Killed(Exception):
        pass

    def killing_fit(*args: Any, monitor: Any = None, **kw: Any) -> Any:
        def kill(rec: Any) -> bool:
            if rec.epoch > 2:
                raise Killed
            return False

        return real_fit(*args, monitor=kill, **kw)

    monkeypatch.setattr(training, "fit", killing_fit)
    with pytest.raises(EstimationError, match="Killed"):
        retrain_run(runs["killed"], config=final)
    (ckpt,) = sorted(runs["killed"].glob(f"final/*/{CHECKPOINT}"))  # the killed model's training state
    assert _finals(runs["killed"]) == {}
    monkeypatch.setattr(training, "fit", real_fit)
    loaded: list[Any] = []
    from tinyevo.training import callbacks

    real_load = callbacks.load_checkpoint
    monkeypatch.setattr(callbacks, "load_checkpoint", lambda *a: loaded.append(real_load(*a)) or loaded[-1])
    (resumed,) = retrain_run(runs["killed"], config=final)
    assert [saved["loop"]["epoch"] for saved in loaded] == [2]  # resumed after epoch 2, not trained from scratch
    assert not ckpt.exists()
    (whole,) = _finals(runs["whole"]).values()
    assert resumed.trial == whole.trial and resumed.metrics["epochs"] == 4.0
    assert ckpt.parent == model_dir(runs["killed"], resumed.trial)
    a = torch.load(runs["whole"] / whole.weights, weights_only=True)
    b = torch.load(runs["killed"] / resumed.weights, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_final_curves_mark_the_epoch_whose_weights_restore_best_kept(searched: Searched) -> None:
    from tinyevo.run.report import final_curves, write_report
    from tinyevo.run.retraining import model_dir
    from tinyevo.run.view import open_run

    parts = replace(searched.parts, trainer=ScriptedTrainer())
    finals = retrain_run(searched.run_dir, config=with_final_options(searched.config, top_k=2), parts=parts)
    curve = [{"epoch": 1.0, "val_acc": 0.4}, {"epoch": 2.0, "val_acc": 0.7}, {"epoch": 3.0, "val_acc": 0.6}]
    for f in finals:
        (model_dir(searched.run_dir, f.trial) / "history.json").write_text(json.dumps(curve))
    with SQLiteStorage(searched.run_dir / DB_NAME) as s:
        s.add_final(replace(finals[0], metrics={**finals[0].metrics, "epoch_restored": 2.0}))
    by_trial = {trial: restored for trial, _, restored in final_curves(open_run(searched.run_dir))}
    assert by_trial == {finals[0].trial: (2.0, 0.7), finals[1].trial: None}
    assert any(p.name == "final_curves.png" for p in write_report(searched.run_dir).images)


def test_retrain_plan_checks_its_fields_and_follows_the_config() -> None:
    from tinyevo.training import TrainConfig

    with pytest.raises(ConfigError, match="needs start='weights'"):
        RetrainPlan(accept="if_better")
    with pytest.raises(ConfigError, match="data must be one of"):
        RetrainPlan(data="val")  # type: ignore[arg-type]
    assert RetrainPlan.for_config({"train_on_val": True}).data == "train+val"
    assert RetrainPlan.for_config({}, start="weights").data == "train"
    cfg = TrainConfig(epochs=1)
    assert RetrainPlan(data="train+val").training_config(cfg).train_on_val is True
    assert RetrainPlan().training_config(cfg) is cfg


def test_the_plan_is_recorded_with_the_model(searched: Searched) -> None:
    best = searched.ranked[0]
    parts = replace(searched.parts, trainer=ContinuingTrainer())
    retrain_run(searched.run_dir, parts=parts, trials=[best])
    retrain_run(searched.run_dir, parts=parts, trials=[best], plan=RetrainPlan(start="weights", accept="if_better"))
    doc = json.loads((searched.run_dir / _finals(searched.run_dir)[best].weights).with_name("metrics.json").read_text())
    assert doc["plan"] == {"start": "weights", "accept": "if_better", "data": "train"}
