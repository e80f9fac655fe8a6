"""Fast fakes for run-engine tests: a cost function and an evaluator that do not train anything.

Importable by spawned worker processes and by the subprocess script ``fake_search.py`` (tests/run is on
sys.path).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tinyevo.run.assembly import EvalTask
from tinyevo.run.config import (
    BudgetConfig,
    DataConfig,
    ExecutorConfig,
    FinalConfig,
    LimitsConfig,
    RunConfig,
    SpaceConfig,
)
from tinyevo.run.engine import RunAssembly
from tinyevo.spaces import create_space
from tinyevo.strategies.base import Constraint, Problem


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def fake_cost(genome: object) -> dict[str, float]:
    """NB201 genomes: conv count as 'macs', a hash as 'peak_sram_bytes'."""
    s = str(genome)
    convs = s.count("conv_3x3") * 3 + s.count("conv_1x1")
    return {
        "macs": float(convs),
        "params": float(convs * 10),
        "peak_sram_bytes": 1000.0 + 1000.0 * _unit(s + "sram"),
        "flash_bytes": 2000.0 + 100.0 * convs,
    }


@dataclass(frozen=True)
class FakeEvaluate:
    """val_acc from a hash of (genome, seed); raises for genomes containing ``fail_marker``; NaN for
    ``nan_marker``."""

    sleep_s: float = 0.0
    fail_marker: str | None = None
    nan_marker: str | None = None

    def __call__(self, task: EvalTask) -> dict[str, float]:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_marker is not None and self.fail_marker in task.genome:
            raise RuntimeError(f"boom on {task.genome}")
        if self.nan_marker is not None and self.nan_marker in task.genome:
            return {"val_acc": math.nan}
        return {"val_acc": round(_unit(f"{task.genome}/{task.seed}"), 6), "train_time_s": 0.0}


def fake_trainer(ir: Any, data: Any, *, config: Any, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    return SimpleNamespace(model=model, history=(), metrics={"val_acc": 0.5, "test_acc": 0.75})


def fake_config(
    *,
    budget: int = 12,
    batch: int = 1,
    workers: int = 1,
    executor: str = "local",
    seed: int = 3,
    strategy: str = "regularized-evolution",
    final: bool = False,
    pareto: bool = False,
    time_s: float | None = None,
) -> RunConfig:
    return RunConfig(
        data=DataConfig(spec="fake"),
        space=SpaceConfig(name="nb201", options={"channels": 4, "cells_per_stage": 1}),
        strategy=strategy,
        limits=LimitsConfig(device=None, macs=12),
        budget=BudgetConfig(trials=budget, time_s=time_s),
        executor=ExecutorConfig(name=executor, workers=workers, batch_size=batch),
        final=FinalConfig(enabled=final, pareto=pareto, max_models=3, train={"epochs": 1}),
        seed=seed,
    )


def fake_parts(config: RunConfig, *, evaluate: FakeEvaluate | None = None) -> RunAssembly:
    space = create_space("nb201", input_shape=(3, 8, 8), num_classes=3, channels=4, cells_per_stage=1)
    problem = Problem(
        objectives=tuple(config.objectives),
        constraints=(Constraint("macs", upper=float(config.limits.macs or 1e9)),),
    )
    parts = RunAssembly(
        space=space,
        problem=problem,
        cost=fake_cost,
        evaluate=evaluate or FakeEvaluate(),
        data=SimpleNamespace(),
        trainer=fake_trainer,
    )
    if (
        config.strategy == "regularized-evolution"
    ):  # the same composition with a population small enough for tests
        from tinyevo.strategies.evolution import EvolutionaryStrategy
        from tinyevo.strategies.operators import Mutation, Variation
        from tinyevo.strategies.selection import DiscardOldest, TournamentSelection

        parts.strategy_factory = lambda: EvolutionaryStrategy(
            space,
            problem,
            population_size=4,
            parent_selection=TournamentSelection(size=2),
            survivor_selection=DiscardOldest(),
            variation=Variation(crossover_prob=0.5, mutation=Mutation()),
            seed=config.seed,
        )
    return parts


def trial_signature(run_dir: Path) -> list[tuple[Any, ...]]:
    """What must be equal between an interrupted-and-resumed run and an uninterrupted one."""
    from tinyevo.storage import DB_NAME, SQLiteStorage

    with SQLiteStorage(Path(run_dir) / DB_NAME, readonly=True) as s:
        return [
            (
                r.number,
                r.trial.genome,
                r.trial.status.value,
                dict(r.trial.metrics),
                r.trial.parents,
                r.trial.origin,
                r.batch,
                r.eval_seed,
            )
            for r in s.records()
        ]
