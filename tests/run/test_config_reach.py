"""What the library can do is reachable from a run config (issue 18 item 11): each option is validated at the
edge and reaches the object it configures (the strategy, the problem, the limits, the estimator, the seeds)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinyevo.errors import ConfigError, InfeasibleError
from tinyevo.estimators import PROXIES, proxy_score
from tinyevo.run.assembly import (
    EvalTask,
    cached_dataset,
    make_limits,
    make_problem,
    pareto_objectives,
    search_estimator,
)
from tinyevo.run.config import FidelityConfig, RunConfig, build_config, load_config_file, validate_names
from tinyevo.run.engine import assemble_run, make_strategy, prefilter_genomes
from tinyevo.run.options import PROXY_NAMES
from tinyevo.run.precheck import check_limits_reachable
from tinyevo.run.report import front_style
from tinyevo.strategies.base import Candidate, Status, fitness
from tinyevo.strategies.init import TrivialInit
from tinyevo.strategies.loop import finish_trial
from tinyevo.strategies.selection import TruncationSelection
from tinyevo.strategies.warmstart import WarmStart

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configs"
BOARD = """
[devices.test-board-g]
core = "cortex-m4"
clock_mhz = 64
sram = "40KB"
flash = "300KB"
active_power_mw = 20.0
description = "a board of the test"
source = "this test"
"""


# --- strategy options ---


def test_strategy_options_reach_the_strategy():
    config = build_config({}, strategy="mcunet", strategy_options={
        "population": 9, "offspring": 4, "generations": 2, "selection": "truncation", "parents": 3,
        "mutation_rate": 0.3, "crossover_prob": 0.25, "initialization": "trivial"})
    parts = assemble_run(config)
    strategy = make_strategy(config, parts.space, parts.problem)
    assert (strategy.population_size, strategy.offspring_per_generation, strategy.max_generations) == (9, 4, 2)
    assert strategy.parent_selection == TruncationSelection(top=3)
    assert (strategy.variation.mutation.rate, strategy.variation.crossover_prob) == (0.3, 0.25)
    assert isinstance(strategy.initialization, TrivialInit)
    assert str(strategy.ask().genome) == str(parts.space.trivial())
    assert RunConfig.from_json(config.to_json()) == config  # stored with the run, resumed the same


@pytest.mark.parametrize("strategy, preset_breeds", [
    ("mcunet", 16), ("nsga2", 16), ("evolution-tournament", 1), ("regularized-evolution", 1)])
def test_breeds_reaches_the_deduplicator(strategy: str, preset_breeds: int) -> None:
    parts = assemble_run(build_config({}, strategy=strategy))
    assert make_strategy(build_config({}, strategy=strategy), parts.space, parts.problem).seen.breeds == preset_breeds
    config = build_config({"strategy": strategy, "strategy_options": {"breeds": 7}})
    assert make_strategy(config, parts.space, parts.problem).seen.breeds == 7
    assert RunConfig.from_json(config.to_json()) == config


def test_population_flag_merges_with_the_table():
    config = build_config({"strategy": "regularized-evolution", "strategy_options": {"mutation_rate": 0.5}},
                          strategy_options={"population": 11})
    assert config.strategy_options.population == 11 and config.strategy_options.mutation_rate == 0.5


@pytest.mark.parametrize("values, message", [
    ({"strategy_options": {"population": 0}}, "strategy_options.population must be >= 1, got 0"),
    ({"strategy_options": {"breeds": 0}}, "strategy_options.breeds must be >= 1, got 0"),
    ({"strategy_options": {"population": 2.5}}, "strategy_options.population must be an integer, got 2.5"),
    ({"strategy_options": {"mutation_rate": 1.5}}, "strategy_options.mutation_rate must be <= 1"),
    ({"strategy_options": {"crossover_prob": math.nan}}, "strategy_options.crossover_prob must be a finite"),
    ({"strategy_options": {"selection": "best"}}, "strategy_options.selection must be one of 'tournament'"),
    ({"strategy_options": {"popsize": 5}}, "unknown option 'strategy_options.popsize'"),
    ({"strategy_options": 5}, "strategy_options must be a table"),
    ({"soft": ["sramm"]}, "--soft item must be one of 'sram'"),
    ({"soft": 3}, "--soft"),
    ({"soft_penalty": -1.0}, "--soft-penalty must be >= 0"),
    ({"soft_penalty": math.inf}, "--soft-penalty must be a finite number"),
    ({"fidelity": {"width": 0.0}}, "fidelity.width must be > 0"),
    ({"fidelity": {"data_fraction": 2.0}}, "fidelity.data_fraction must be <= 1"),
    ({"fidelity": {"epochs": 2}}, "unknown option 'fidelity.epochs'"),
    ({"prefilter": {"proxy": "zen"}}, "prefilter.proxy must be one of 'synflow'"),
    ({"prefilter": {"pool": 5, "size": 6}}, "size (6) must be at most pool (5)"),
    ({"prefilter": {"pool": 10**9}}, "prefilter.pool must be <= 10000"),
    ({"device_file": 5}, "--device-file"),
])
def test_bad_values_are_one_line(values, message):
    with pytest.raises(ConfigError) as err:
        build_config(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_strategy_options_the_strategy_does_not_take():
    config = build_config({}, strategy_options={"population": 5})  # the default strategy has its own options
    with pytest.raises(ConfigError, match="strategy 'surrogate-evolution' has no option 'population'; its "
                                          r"\[strategy_options\] are crossovers, elite, explore"):
        validate_names(config)
    with pytest.raises(ConfigError, match="strategy 'surrogate-evolution' has no option 'population'"):
        assemble_run(config)  # before a run directory exists
    config = build_config({}, strategy="random", strategy_options={"lr": 0.1})
    with pytest.raises(ConfigError, match="strategy 'random' takes no .*got 'lr'.*that take 'lr': reinforce"):
        validate_names(config)


REINFORCE_OPTIONS = {"lr": 0.05, "batch_size": 3, "baseline_decay": 0.5, "entropy": 0.2, "adam_beta1": 0.8,
                     "adam_beta2": 0.95}
SURROGATE_OPTIONS = {"initial": 6, "elite": 3, "niche_edits": 2.0, "mutants": 10, "crossovers": 2,
                     "random_pool": 7, "patience": 5, "explore": 0.1, "max_train": 64, "max_pool": 300,
                     "refit_fraction": 0.05}
ATTRIBUTE = {"adam_beta1": lambda s: s.adam_betas[0], "adam_beta2": lambda s: s.adam_betas[1]}


@pytest.mark.parametrize("strategy, space, name, value", [
    *(("reinforce", "nb201", k, v) for k, v in REINFORCE_OPTIONS.items()),
    *(("surrogate-evolution", "chain", k, v) for k, v in SURROGATE_OPTIONS.items()),
])
def test_each_strategy_option_reaches_its_object(strategy, space, name, value):
    config = build_config({"strategy": strategy, "space": space, "strategy_options": {name: value}})
    parts = assemble_run(config)
    made = make_strategy(config, parts.space, parts.problem)
    got = ATTRIBUTE.get(name, lambda s: getattr(s, name))(made)
    assert got == value and type(got) is type(value)
    assert RunConfig.from_json(config.to_json()) == config  # stored with the run, resumed the same


@pytest.mark.parametrize("options, message", [
    ({"lr": 0}, "strategy_options.lr must be > 0"),
    ({"lr": "fast"}, "strategy_options.lr must be a number"),
    ({"baseline_decay": 1.0}, "strategy_options.baseline_decay must be < 1"),
    ({"adam_beta1": -0.5}, "strategy_options.adam_beta1 must be >= 0"),
    ({"batch_size": 1.5}, "strategy_options.batch_size must be an integer, got 1.5"),
    ({"entropy": math.inf}, "strategy_options.entropy must be a finite number"),
    ({"initial": 1}, "strategy_options.initial must be >= 2, got 1"),
    ({"explore": 2.0}, "strategy_options.explore must be <= 1"),
    ({"max_train": 2}, "strategy_options.max_train must be >= 4"),
    ({"refit_fraction": -0.1}, "strategy_options.refit_fraction must be >= 0"),
    ({"mutants": True}, "strategy_options.mutants must be an integer"),
    ({"crossover": 3}, "unknown option 'strategy_options.crossover'"),
])
def test_bad_reinforce_and_surrogate_options_are_one_line(options, message):
    with pytest.raises(ConfigError) as err:
        build_config({"strategy_options": options})
    assert message in str(err.value) and "\n" not in str(err.value)


# --- soft limits ---


def test_a_soft_limit_penalises_instead_of_making_infeasible():
    hard = build_config({}, device="none", sram="1KB", flash="64KB")
    soft = build_config({}, device="none", sram="1KB", flash="64KB", soft=["sram"], soft_penalty=10.0)
    cost = {"peak_sram_bytes": 1536.0, "flash_bytes": 1000.0}  # 50 % over the SRAM limit, under the flash one
    metrics = {"val_acc": 0.9}

    def evaluate(genome: object) -> dict[str, float]:
        return dict(metrics)

    hard_problem = make_problem(hard, make_limits(hard.limits))
    trial = finish_trial(0, Candidate(genome="g"), hard_problem, cost=cost, evaluate=evaluate)
    assert trial.status is Status.INFEASIBLE

    soft_problem = make_problem(soft, make_limits(soft.limits))
    trial = finish_trial(0, Candidate(genome="g"), soft_problem, cost=cost, evaluate=evaluate)
    assert trial.status is Status.OK and trial.metrics["val_acc"] == 0.9
    assert fitness(soft_problem, trial) == pytest.approx(0.9 - 10.0 * 0.5)  # (1536 - 1024) / 1024 over
    flash = [c for c in soft_problem.constraints if c.metric == "flash_bytes"]
    assert flash and flash[0].hard  # only the named limit is soft


def test_a_soft_limit_must_be_set():
    config = build_config({}, device="none", sram="4KB", soft=["latency_ms"])
    with pytest.raises(ConfigError, match="soft names the latency_ms limit, but the run sets no latency_ms limit"):
        make_problem(config, make_limits(config.limits))


def test_a_soft_limit_is_not_a_reason_to_refuse_the_search():
    config = build_config({}, device="none", sram="16B", flash="64KB")
    data = cached_dataset("digits", 0, config.data.val_fraction, config.data.val_min_per_class)
    with pytest.raises(InfeasibleError, match="peak_sram_bytes <= 16 B"):  # no network fits 16 B of SRAM
        check_limits_reachable(config, data)
    check_limits_reachable(build_config({}, device="none", sram="16B", flash="64KB", soft=["sram"]), data)


# --- a user device file ---


def test_device_file_reaches_the_limits_and_is_stored_with_the_run(tmp_path: Path):
    board = tmp_path / "boards.toml"
    board.write_text(BOARD)
    config = build_config({}, data="digits", device="test-board-g", device_file=[str(board)])
    limits = make_limits(config.limits)
    assert limits.device.name == "test-board-g" and limits.device.clock_mhz == 64
    assert limits.sram_bytes == 40 * 1024 and limits.flash_bytes == 300 * 1024
    stored = config.to_json()
    board.unlink()  # the run keeps the text: it resumes without the file
    again = RunConfig.from_json(stored)
    assert again == config and make_limits(again.limits).device.name == "test-board-g"


def test_device_file_in_a_config_file_is_relative_to_it(tmp_path: Path):
    (tmp_path / "b.toml").write_text(BOARD)
    cfg = tmp_path / "run.toml"
    cfg.write_text('device_file = "b.toml"\ndevice = "test-board-g"\n')
    config = build_config(load_config_file(cfg))
    assert config.limits.device == "test-board-g" and config.limits.device_files == (BOARD,)


def test_missing_device_file_is_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read device file .*nope.toml"):
        build_config({}, device_file=[str(tmp_path / "nope.toml")])


# --- low fidelity ---


def test_fidelity_reaches_the_estimator():
    est = search_estimator("train", {"epochs": 8}, fidelity=FidelityConfig(
        epochs_fraction=0.25, data_fraction=0.5, width=0.5, resolution=0.75))
    assert est.config.epochs == 2
    f = est.fidelity
    assert (f.data_fraction, f.width_multiplier, f.resolution_scale) == (0.5, 0.5, 0.75)
    lowfi = search_estimator("lowfi", {"epochs": 8}, fidelity=FidelityConfig(data_fraction=0.5))
    assert lowfi.fidelity.data_fraction == 0.5 and lowfi.fidelity.width_multiplier == 0.5  # the preset's width
    assert search_estimator("train", {"epochs": 3}, fidelity=FidelityConfig(epochs_fraction=0.1)).config.epochs == 1


def test_fidelity_needs_an_estimator_that_trains():
    with pytest.raises(ConfigError, match="estimator 'naswot' trains no candidate, so \\[fidelity\\] width"):
        search_estimator("naswot", {"epochs": 2}, fidelity=FidelityConfig(width=0.5))


def test_fidelity_changes_what_a_trial_trains():
    config = build_config({}, fidelity={"width": 0.25}, train={"epochs": 1})
    parts = assemble_run(config)
    genome = "conv_k3_s1_c16-gap"
    full = assemble_run(build_config({}, train={"epochs": 1})).evaluate(EvalTask(0, genome, seed=0))
    small = parts.evaluate(EvalTask(0, genome, seed=0))
    assert full["val_acc"] != small["val_acc"]  # a quarter of the 16 channels is another network


# --- zero-cost pre-filtering ---


def test_proxy_names_agree_with_the_estimators():
    assert set(PROXY_NAMES) == set(PROXIES)


def test_prefilter_picks_the_best_feasible_genomes_by_the_proxy():
    config = build_config({}, prefilter={"proxy": "naswot", "pool": 6, "size": 2})
    parts = assemble_run(config)
    chosen = prefilter_genomes(config, parts, parts.data)
    assert len(chosen) == 2
    # oracle: the same draws, checked and scored one by one
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 7]))
    pool: list[str] = []
    for _ in range(120):
        g = parts.space.sample(rng)
        if str(g) not in pool and parts.problem.hard_violation(parts.cost(g)) == 0:
            pool.append(str(g))
        if len(pool) == 6:
            break
    scores = {g: proxy_score("naswot", parts.space.decode(parts.space.parse(g)), parts.data, seed=config.seed)
              for g in pool}
    assert list(chosen) == sorted(pool, key=lambda g: -scores[g])[:2]


def test_prefiltered_genomes_are_asked_first():
    config = build_config({}, init=["conv_k3_s1_c8-gap"], prefilter={"pool": 4, "size": 2})
    parts = assemble_run(config)
    chosen = ("conv_k3_s1_c4-gap", "conv_k5_s1_c4-gap")
    config = replace(config, prefilter=replace(config.prefilter, chosen=chosen))
    strategy = make_strategy(config, parts.space, parts.problem)
    assert isinstance(strategy, WarmStart)
    assert [str(strategy.ask().genome) for _ in range(3)] == ["conv_k3_s1_c8-gap", *chosen]


# --- the example configs of docs/configs ---


@pytest.mark.parametrize("path", sorted(p for p in DOCS.glob("*.toml") if p.name != "my-boards.toml"),
                         ids=lambda p: p.name)
def test_every_example_config_loads_and_validates(path: Path):
    config = build_config(load_config_file(path))
    validate_names(config)
    assert RunConfig.from_json(config.to_json()) == config


def test_example_configs_set_what_they_say():
    by_name = {p.stem: build_config(load_config_file(p)) for p in DOCS.glob("*.toml") if p.stem != "my-boards"}
    assert by_name["strategy-options"].strategy_options.population == 20
    assert by_name["soft-limits"].limits.soft == ("latency_ms",)
    assert by_name["own-device"].limits.device == "my-m4-board"
    assert by_name["low-fidelity"].estimator.fidelity.epochs_fraction == 0.25
    assert by_name["prefilter"].prefilter is not None and by_name["prefilter"].prefilter.pool == 200
    rl = by_name["reinforce-options"]
    assert (rl.strategy, rl.strategy_options.lr, rl.strategy_options.batch_size) == ("reinforce", 0.1, 4)
    se = by_name["surrogate-options"]
    assert (se.strategy, se.strategy_options.initial, se.strategy_options.refit_fraction) == (
        "surrogate-evolution", 10, 0.05)
    dn = by_name["dnas"].dnas
    assert dn is not None and (dn.epochs, dn.arch_lr, dn.exclude) == (3, 0.005, ("none",))


def test_example_strategy_configs_make_their_strategies():
    for stem, attribute, value in (("reinforce-options", "entropy", 0.05), ("surrogate-options", "max_train", 200)):
        config = build_config(load_config_file(DOCS / f"{stem}.toml"))
        parts = assemble_run(config)
        assert getattr(make_strategy(config, parts.space, parts.problem), attribute) == value


# --- the report's Pareto front follows the problem's axes (issue 18 item 5) ---


def test_report_draws_the_front_on_the_problems_axes():
    sram_only = build_config({}, device="none", sram="4KB")
    both = build_config({}, device="none", sram="4KB", flash="64KB")
    flash_only = build_config({}, device="none", flash="64KB")

    def axes(config: RunConfig) -> list[str]:
        return [a.metric for a in pareto_objectives(make_problem(config, make_limits(config.limits)))]

    assert front_style(axes(sram_only), "val_acc", "peak_sram_bytes") == "line"
    assert front_style(axes(flash_only), "val_acc", "flash_bytes") == "line"  # was drawn on SRAM only
    assert front_style(axes(flash_only), "val_acc", "peak_sram_bytes") is None
    assert front_style(axes(both), "val_acc", "peak_sram_bytes") == "markers"  # a 3-axis front, projected


# --- dnas settings ([dnas] table of search --strategy dnas) ---

DNAS_SPACE = {"space": "nb201", "space_options": {"channels": 2, "cells_per_stage": 1}}
DNAS_OPTIONS = {"arch_lr": 0.01, "arch_weight_decay": 0.0, "warmup_epochs": 2, "gumbel": True, "tau": 0.5,
                "penalty": 3.0, "exclude": ["none", "skip_connect"], "epochs": 3}


class _Searched(Exception):
    pass


def _dnas_search_inputs(monkeypatch: pytest.MonkeyPatch, values: dict) -> dict:
    """What :func:`tinyevo.run.dnas.dnas_genome` hands the DNAS search for the config ``values`` (the search
    itself is replaced: it trains)."""
    import tinyevo.run.dnas as run_dnas

    seen: dict = {}

    def search(space, data, recipe, *, seed, cfg, cost, limits):  # type: ignore[no-untyped-def]
        seen.update(recipe=recipe, cfg=cfg, limits=limits)
        raise _Searched

    monkeypatch.setattr(run_dnas, "dnas_search", search)
    config = build_config({**DNAS_SPACE, **values}, train={"epochs": 1}, flash="12KB")
    assert RunConfig.from_json(config.to_json()) == config  # stored with the run
    with pytest.raises(_Searched):
        run_dnas.dnas_genome(config)
    return seen


@pytest.mark.parametrize("name, value", list(DNAS_OPTIONS.items()))
def test_each_dnas_option_reaches_the_search(name, value, monkeypatch):
    seen = _dnas_search_inputs(monkeypatch, {"dnas": {name: value}})
    if name == "epochs":
        assert seen["recipe"].epochs == value  # the search's length; [train] says 1
    else:
        assert getattr(seen["cfg"], name) == (tuple(value) if isinstance(value, list) else value)


def test_dnas_defaults_without_the_table(monkeypatch):
    from tinyevo.supernet.dnas import DnasConfig

    seen = _dnas_search_inputs(monkeypatch, {})
    assert seen["recipe"].epochs == 1 and seen["cfg"] == DnasConfig(exclude=("none",))  # nb201 guards "none"
    seen = _dnas_search_inputs(monkeypatch, {"dnas": {"exclude": []}})
    assert seen["cfg"].exclude == ()  # an empty list excludes nothing


@pytest.mark.parametrize("options, message", [
    ({"arch_lr": 0.0}, "dnas.arch_lr must be > 0"),
    ({"epochs": 0}, "dnas.epochs must be >= 1, got 0"),
    ({"gumbel": 1}, "dnas.gumbel must be true or false, got 1"),
    ({"tau": math.nan}, "dnas.tau must be a finite number"),
    ({"exclude": "none"}, "dnas.exclude must be a list"),
    ({"arch_lrr": 0.1}, "unknown option 'dnas.arch_lrr'"),
])
def test_bad_dnas_options_are_one_line(options, message):
    with pytest.raises(ConfigError) as err:
        build_config({"dnas": options})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_dnas_table_needs_the_dnas_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from tinyevo.cli.main import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('strategy = "random"\nbudget = 1\n[dnas]\narch_lr = 0.01\n')
    assert main(["search", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "the [dnas] table sets up --strategy dnas, not 'random'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_strategy_dnas_in_a_config_file_is_the_dnas_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from tinyevo.cli.main import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('strategy = "dnas"\nspace = "chain"\n[dnas]\narch_lr = 0.01\n')
    assert main(["search", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "dnas" in err and "nb201" in err and "unknown strategy" not in err  # DNAS itself refuses chain
