"""After the search: pick the best feasible models (or the Pareto front), retrain them longer, test, save.

:func:`retrain_many` retrains several models, one per process when asked (``[final] workers``); of several
retrained models the one with the best final validation accuracy is the run's model (:func:`best_retrained`): the
test split never takes part in choosing.

Each retrained model gets a folder ``final/trial-NNNN/`` in the run directory with ``model.pt`` (a
``state_dict``, loadable with ``torch.load(path, weights_only=True)``), ``genome.txt``, ``metrics.json`` and
``history.json``. A run's retraining writes a model's files to ``final/trial-NNNN/.incoming/`` first; the driver
then commits the model together with the SHA-256 of its ``model.pt`` in one database transaction, and only then
moves the files into place (``model.pt`` last) -- :func:`commit_final`. A kill at any moment is repaired on the next
``resume`` / ``retrain`` (:func:`repair_finals`): files of an uncommitted model are dropped, a committed model's
move is finished, and a stored model whose files do not match the database is forgotten and retrained. So a run
killed during retraining redoes only the unfinished models on resume, and each of those goes on from its last checkpoint
(``checkpoint.pt``, saved at most once a minute at an epoch's end by tinyevo's trainer, removed once the model is
saved). Long trainings can so be run as a series of short jobs: the same ``tinyevo retrain`` command again in each
job resumes from the checkpoint (the checkpoint must come from the same training: configuration, seed, data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from tinyevo.fsutil import atomic_write, atomic_write_text, ensure_dir
from tinyevo.pareto import pareto_front
from tinyevo.run.teacher import Teacher, parse_teacher
from tinyevo.storage.base import RetrainedModel
from tinyevo.strategies.base import Objective, Problem, Status, Trial, rank_key

Trainer = Callable[..., Any]
"""``trainer(ir, data, *, config, seed[, init_state][, teacher]) -> TrainResult`` (default:
:func:`tinyevo.training.train_model`; ``init_state`` is passed only to continue from earlier weights, ``teacher``
only when ``[final] teacher`` is set)."""

FINAL_DIR = "final"
CHECKPOINT = "checkpoint.pt"  # the training state of a model being retrained (removed once it is saved)
INCOMING = ".incoming"  # a retrained model's files before the database holds it (see commit_final)
_MODEL_FILES = ("genome.txt", "metrics.json", "history.json", "model.pt")  # model.pt moves last

log = logging.getLogger(__name__)


def select_for_retraining(
    problem: Problem,
    trials: Sequence[Trial],
    *,
    pareto: bool,
    max_models: int,
    objectives: Sequence[Objective] | None = None,
    top_k: int = 1,
) -> list[Trial]:
    """The ``top_k`` best feasible trials (best first; ties keep the earlier trial), or up to ``max_models``
    Pareto-front trials (best first objective first)."""
    ok = [t for t in trials if t.status is Status.OK]
    if not ok:
        return []
    if not pareto:
        order = sorted(range(len(ok)), key=lambda i: (rank_key(problem, ok[i]), -i), reverse=True)
        return [ok[i] for i in order[: max(1, top_k)]]
    return pareto_front(ok, objectives or problem.objectives)[:max_models]


def best_retrained(finals: Sequence[RetrainedModel], objective: Objective | None = None) -> RetrainedModel | None:
    """The retrained model with the best final value of ``objective`` (default: the highest validation accuracy,
    ``val_acc``; models without a finite value rank last, ties keep the earlier trial): the run's model when
    several were retrained (:meth:`tinyevo.run.view.RunView.run_model` passes the run's objective). None for no
    models."""
    objective = objective or Objective("val_acc")

    def key(f: RetrainedModel) -> float:
        v = f.metrics.get(objective.metric, math.nan)
        return -math.inf if v is None or not math.isfinite(v) else objective.score(f.metrics)

    best: RetrainedModel | None = None
    for f in sorted(finals, key=lambda f: f.trial):
        if best is None or key(f) > key(best):
            best = f
    return best


def _json_default(obj: object) -> object:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def load_weights(path: str | Path) -> dict[str, Any]:
    """The ``state_dict`` saved in ``path`` (a retrained model's ``model.pt``), loaded with
    ``torch.load(weights_only=True)``: a file that holds anything but tensors (e.g. a pickled object planted in
    someone else's run directory, which plain ``torch.load`` would run) or that is damaged is a
    :class:`~tinyevo.errors.StorageError`, one line."""
    import torch

    from tinyevo.errors import StorageError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StorageError(f"weights file {path} is missing") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError (not a zip file), EOFError, ...
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise StorageError(
            f"{path} is not a plain weights file (weights-only loading refused it: {first[:160]})"
        ) from None
    if not isinstance(state, dict):
        raise StorageError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return state


def model_dir(run_dir: Path, trial: int) -> Path:
    return run_dir / FINAL_DIR / f"trial-{trial:04d}"


@dataclass(frozen=True)
class RetrainPlan:
    """How a model is retrained after the search (keyword-only):

    * ``start``: ``"scratch"`` (weights from the seed) or ``"weights"`` (the model's earlier final weights: one
      more schedule cycle, e.g. with a lower learning rate);
    * ``accept``: ``"always"`` (the new model replaces the earlier one) or ``"if_better"`` (with
      ``start="weights"``: when the new cycle ends with a lower validation accuracy than the earlier model, the
      earlier model stays and the new cycle's files go to ``final/trial-NNNN/rejected/``);
    * ``data``: ``"train"`` or ``"train+val"`` (the validation split is trained on too, ``[final.train]
      train_on_val``: the model then has no held-out validation accuracy of its own; it is reported as
      ``val_acc_seen``, and a cycle that starts from earlier weights keeps the earlier model's ``val_acc``, so its
      rank among the run's models carries over and ``if_better`` never rejects it).

    ``tinyevo retrain --continue`` is ``start="weights"``, ``--keep-best`` ``accept="if_better"``."""

    start: Literal["scratch", "weights"] = "scratch"
    accept: Literal["always", "if_better"] = "always"
    data: Literal["train", "train+val"] = "train"

    def __post_init__(self) -> None:
        from tinyevo.errors import ConfigError

        for name, allowed in (("start", ("scratch", "weights")), ("accept", ("always", "if_better")),
                              ("data", ("train", "train+val"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"retraining {name} must be one of {', '.join(allowed)}; "
                                  f"got {getattr(self, name)!r}")
        if self.accept == "if_better" and self.start != "weights":
            raise ConfigError("accept='if_better' compares a new cycle with the model it continues from: it needs "
                              "start='weights' (tinyevo retrain --keep-best needs --continue)")

    @classmethod
    def for_config(cls, train: Mapping[str, Any], *, start: Literal["scratch", "weights"] = "scratch",
                   accept: Literal["always", "if_better"] = "always") -> RetrainPlan:
        """The plan of a run's ``[final.train]`` options (``train_on_val`` -> ``data="train+val"``)."""
        return cls(start=start, accept=accept, data="train+val" if train.get("train_on_val") else "train")

    def training_config(self, config: Any) -> Any:
        """``config`` (a :class:`~tinyevo.training.TrainConfig`) training on the plan's data."""
        want = self.data == "train+val"
        if is_dataclass(config) and hasattr(config, "train_on_val") and config.train_on_val != want:
            return replace(config, train_on_val=want)
        return config


def retrain(
    trial: Trial,
    *,
    space: Any,
    data: Any,
    train_config: Any,
    seed: int,
    run_dir: Path,
    cost: Mapping[str, float],
    trainer: Trainer | None = None,
    continue_from: Path | None = None,
    teacher: Teacher | str | Sequence[str] | None = None,
    plan: RetrainPlan | None = None,
    staged: bool = False,
    inherit_from: str | Path | None = None,
) -> RetrainedModel:
    """Retrain ``trial``'s architecture with ``train_config`` as ``plan`` says (default: from scratch, on the
    training split or as ``train_config.train_on_val`` says, always accepted), test it and save it under
    ``run_dir``. ``continue_from``: the weights file of the earlier final model (``plan.start == "weights"``).
    ``teacher``: distil from that retrained model, or from the ensemble of several (:func:`load_teacher`). A cycle
    that also trained on the validation split (``plan.data == "train+val"``) has no held-out ``val_acc`` of its
    own: starting from earlier weights it keeps the earlier model's (recorded as ``val_acc_inherited`` = 1), so
    ``accept="if_better"`` never rejects it. ``staged``: write the
    model's files to ``final/trial-NNNN/.incoming/`` for :func:`commit_final` to put in place once the database
    holds the model (what a run's retraining does). ``inherit_from``: a trained supernet's directory (a run
    scored by ``search --supernet``): a retraining that would start from scratch starts from the weights the
    architecture inherits from the supernet instead (:meth:`tinyevo.supernet.Supernet.extract`)."""
    import torch

    teacher = Teacher.parse(teacher)
    if plan is None:
        on_val = bool(getattr(train_config, "train_on_val", False))
        plan = RetrainPlan(start="weights" if continue_from is not None else "scratch",
                           data="train+val" if on_val else "train")
    if plan.start == "weights" and continue_from is None:
        raise ValueError("a retraining that starts from earlier weights needs their file (continue_from)")
    train_config = plan.training_config(train_config)
    ir = space.decode(space.parse(trial.genome))
    out = ensure_dir(model_dir(run_dir, trial.number), root=run_dir)  # (no planted links inside the run)
    ckpt = out / CHECKPOINT
    if trainer is None:  # tinyevo's trainer: checkpointed, so a killed retraining goes on where it was saved
        from tinyevo.training import train_model

        def trainer(*args: Any, **kwargs: Any) -> Any:
            return train_model(*args, checkpoint=ckpt, **kwargs)
    before: dict[str, Any] | None = None
    extra: dict[str, Any] = {}
    if plan.start == "weights" and continue_from is not None:
        extra["init_state"] = load_weights(continue_from)
        earlier = Path(continue_from).with_name("metrics.json")
        before = json.loads(earlier.read_text()).get("final") if earlier.is_file() else None
    if plan.start == "scratch" and inherit_from is not None:
        extra["init_state"] = inherited_weights(inherit_from, trial.genome)
    if teacher is not None:
        extra["teacher"] = teacher.load()
    start = time.perf_counter()
    result = trainer(ir, data, config=train_config, seed=seed, **extra)
    seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in result.metrics.items()}
    # (a retraining resumed from its checkpoint trained before this process too: train_time_s counts that)
    metrics.setdefault("final_train_s", max(seconds, metrics.get("train_time_s", 0.0)))
    held_out = (before or {}).get("val_acc")
    if plan.data == "train+val" and held_out is not None and math.isfinite(float(held_out)):
        # trained on the validation split too: the held-out estimate is the one of the model this cycle started
        # from, so that model's rank among the run's models (best_retrained) carries over
        metrics["val_acc"] = float(held_out)
        metrics["val_acc_inherited"] = 1.0  # (recorded for the reader of the model's metrics)
    worse = (plan.accept == "if_better" and before is not None
             and float(before.get("val_acc", math.nan)) > metrics.get("val_acc", math.nan))
    # (a NaN on either side compares False: then the new cycle replaces the earlier one)
    home, out = out, (out / "rejected" if worse else out / INCOMING if staged else out)
    if staged and not worse and out.exists():
        shutil.rmtree(out)  # files of an earlier retraining that was never committed
    ensure_dir(out, root=run_dir)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    atomic_write(out / "model.pt", lambda fh: torch.save(state, fh), root=run_dir)
    atomic_write_text(out / "genome.txt", trial.genome + "\n", root=run_dir)
    if plan.start == "weights":  # epochs and seconds over every cycle of this model
        prior = before or {}
        for key in ("epochs", "final_train_s"):
            metrics[f"{key}_total"] = float(prior.get(f"{key}_total", prior.get(key, 0.0))) + metrics.get(key, 0.0)
    doc = {
        "trial": trial.number,
        "genome": trial.genome,
        "seed": seed,
        "final": metrics,
        "search": dict(trial.metrics),
        "cost": dict(cost),
        "train_config": train_config,
        "continued_from": before,
        "plan": asdict(plan),
        "teacher": None if teacher is None else teacher.to_json(),
        "inherited_from": None if inherit_from is None or plan.start != "scratch" else str(inherit_from),
    }
    atomic_write_text(out / "metrics.json", json.dumps(doc, indent=2, default=_json_default, allow_nan=True),
                      root=run_dir)
    history = [asdict(h) if is_dataclass(h) else h for h in getattr(result, "history", ())]
    atomic_write_text(out / "history.json", json.dumps(history, indent=1, allow_nan=True), root=run_dir)
    if not staged:
        ckpt.unlink(missing_ok=True)
    return RetrainedModel(
        trial=trial.number,
        genome=trial.genome,
        metrics={**dict(cost), **(before if worse and before is not None else metrics)},
        weights=str((home / "model.pt").relative_to(run_dir)),
        created_at=time.time(),
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _promote(incoming: Path, home: Path) -> None:
    """Move a committed model's files from ``incoming`` into ``home`` (``model.pt`` last), then drop ``incoming``
    and the training checkpoint. Safe to repeat after a kill at any point."""
    for name in _MODEL_FILES:
        src = incoming / name
        if src.is_file() and not src.is_symlink():
            os.replace(src, home / name)
    shutil.rmtree(incoming, ignore_errors=True)
    (home / CHECKPOINT).unlink(missing_ok=True)


def commit_final(storage: Any, run_dir: Path, model: RetrainedModel) -> None:
    """Commit a model that :func:`retrain` (``staged=True``) returned: the database row and the fingerprint of its
    weights in one transaction, then its files into place. A kill before the commit leaves the earlier model (files
    and row) as it was; a kill after it is finished by :func:`repair_finals`."""
    home = model_dir(run_dir, model.trial)
    incoming = home / INCOMING
    staged = incoming / "model.pt"
    weights = staged if staged.is_file() else run_dir / model.weights  # (a rejected cycle leaves home as it was)
    storage.add_final_checked(model, file_sha256(weights))
    if incoming.exists():
        _promote(incoming, home)
    else:
        (home / CHECKPOINT).unlink(missing_ok=True)


def repair_finals(storage: Any, run_dir: Path) -> list[int]:
    """Bring the final models' files and the database back into agreement after a kill: finish moving a committed
    model's files, drop those of an uncommitted one, and forget (so that it is retrained) a stored model whose
    weights are not the committed ones -- or, for models stored before fingerprints, whose ``metrics.json`` reports
    another validation accuracy than the database. Returns the trial numbers forgotten."""
    root = run_dir / FINAL_DIR
    stored = {f.trial: f for f in storage.finals()}
    if root.is_dir() and not root.is_symlink():
        for incoming in sorted(root.glob(f"trial-*/{INCOMING}")):
            if incoming.is_symlink() or not incoming.is_dir():
                continue
            home = incoming.parent
            number = home.name.removeprefix("trial-")
            want = storage.get_state(f"final_sha256:{int(number)}") if number.isdigit() else None
            staged = incoming / "model.pt"
            if staged.is_file() and want is not None and file_sha256(staged) == want:
                log.info("finishing the commit of the retrained model of trial %s", number)
                _promote(incoming, home)
            elif not staged.is_file() and want is not None and (home / "model.pt").is_file() \
                    and file_sha256(home / "model.pt") == want:
                _promote(incoming, home)  # killed after model.pt moved: only the empty folder is left
            else:
                log.info("dropping the uncommitted retrained model of trial %s", number)
                shutil.rmtree(incoming, ignore_errors=True)
    forgotten: list[int] = []
    for number, f in stored.items():
        weights = run_dir / f.weights
        want = storage.get_state(f"final_sha256:{number}")
        if want is not None:
            bad = not weights.is_file() or file_sha256(weights) != want
        else:
            bad = not weights.is_file() or _disagrees(weights.with_name("metrics.json"), f.metrics)
        if bad:
            log.warning("the files of the final model of trial %d do not match the run database (an interrupted "
                        "retraining?): it will be retrained", number)
            storage.remove_final(number)
            forgotten.append(number)
    return forgotten


def _disagrees(metrics_file: Path, metrics: Mapping[str, float]) -> bool:
    try:
        doc = json.loads(metrics_file.read_text())
        theirs = float(doc["final"]["val_acc"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # nothing to compare with
    ours = float(metrics.get("val_acc", math.nan))
    return math.isfinite(theirs) and math.isfinite(ours) and theirs != ours


def load_teacher(spec: Teacher | str | Sequence[str]) -> Any:
    """The network of a retrained model of a run (``"RUN_DIR"`` for its run's model or ``"RUN_DIR:N"``) in eval
    mode, to distil from; several specs give an :class:`~tinyevo.nn.Ensemble` of theirs (the mean of their
    logits). A missing run, trial or weights is a :class:`~tinyevo.errors.ConfigError` naming it."""
    from tinyevo.deploy.errors import DeployError
    from tinyevo.errors import ConfigError, StorageError
    from tinyevo.nn import Ensemble, build_model
    from tinyevo.run.export import load_trial

    if isinstance(spec, Teacher):
        return spec.load()
    if not isinstance(spec, str):
        return Ensemble([load_teacher(one) for one in spec]).eval()
    run_dir, number = parse_teacher(spec)
    try:
        _, _, ir, state, _ = load_trial(run_dir, trial=number)
    except (DeployError, StorageError) as exc:
        raise ConfigError(f"teacher {spec!r}: {exc}") from None
    model = build_model(ir, seed=0)
    model.load_state_dict(state)
    return model.eval()


@dataclass(frozen=True)
class RetrainTask:
    """One model to retrain, picklable for a worker process. ``data`` is the data set, or None to load
    ``data_spec`` (spec, seed, validation fraction, validation minimum per class) in the worker (cached per process)."""

    trial: Trial
    space: Any
    train_config: Any
    seed: int
    run_dir: Path
    cost: Mapping[str, float]
    data: Any = None
    data_spec: tuple[str, int, float, int] | None = None
    trainer: Trainer | None = None
    continue_from: Path | None = None  # weights of the earlier final model (plan.start == "weights")
    teacher: Teacher | None = None  # retrained model(s) to distil from
    plan: RetrainPlan | None = None  # start / accept / data (default: from scratch, as train_config says)
    staged: bool = False  # files to final/trial-NNNN/.incoming/ until the driver commits (commit_final)
    inherit_from: str | None = None  # a supernet's directory: start from the weights inherited from it


def inherited_weights(directory: str | Path, genome: str) -> dict[str, Any]:
    """The weights sub-network ``genome`` inherits from the supernet in ``directory`` (its ``state_dict``)."""
    from tinyevo.supernet import load_supernet

    net, _ = load_supernet(directory)
    return {k: v.detach().clone() for k, v in net.extract(net.genome(genome)).state_dict().items()}


def run_retrain_task(task: RetrainTask) -> RetrainedModel:
    """Retrain one :class:`RetrainTask` (runs in a worker process or in the driver)."""
    data = task.data
    if data is None:
        from tinyevo.run.assembly import cached_dataset

        if task.data_spec is None:
            raise ValueError("a retraining task needs data or a data spec")
        data = cached_dataset(*task.data_spec)
    return retrain(task.trial, space=task.space, data=data, train_config=task.train_config, seed=task.seed,
                   run_dir=task.run_dir, cost=task.cost, trainer=task.trainer, continue_from=task.continue_from,
                   teacher=task.teacher, plan=task.plan, staged=task.staged, inherit_from=task.inherit_from)


def retrain_many(
    tasks: Sequence[RetrainTask],
    *,
    workers: int = 1,
    on_done: Callable[[RetrainedModel], None] | None = None,
) -> list[RetrainedModel]:
    """Retrain every task, ``workers`` at a time (each in its own process when > 1), calling ``on_done`` with
    each model as it finishes (the driver commits it there). Raises :class:`EstimationError` naming the trials
    whose retraining failed, after the others have finished."""
    from tinyevo.errors import EstimationError
    from tinyevo.executors.base import TaskResult
    from tinyevo.executors.local import InProcessExecutor, LocalPoolExecutor

    done: list[RetrainedModel] = []
    errors: list[str] = []
    # one at a time in this process, or a pool; either way a failed model does not stop the others
    pool = (InProcessExecutor() if workers <= 1 or len(tasks) <= 1
            else LocalPoolExecutor(workers=min(workers, len(tasks)), retries=0))
    try:
        res: TaskResult[RetrainedModel]
        for res in pool.map(run_retrain_task, list(tasks)):
            if res.error is not None or res.value is None:
                errors.append(f"trial {tasks[res.index].trial.number}: {res.error}")
                continue
            done.append(res.value)
            if on_done is not None:
                on_done(res.value)
    finally:
        pool.close()
    if errors:
        raise EstimationError("final retraining failed for " + "; ".join(errors))
    return done
