"""``tinyevo search --init`` (rich initialisation from genomes and the zoo) and ``tinyevo zoo``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tinyevo.cli.main import main
from tinyevo.storage import DB_NAME, SQLiteStorage

SEEDS = ["conv_k3_s1_c8-gap", "dsc_k3_s2_c4-flat"]


@pytest.fixture(scope="module")
def tiny_npz(make_tiny_npz: Callable[..., Path]) -> Path:
    return make_tiny_npz(45, seed=1)


def test_seed_genomes_are_evaluated_first_and_stored(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["search", "--data", str(tiny_npz), "--budget", "4", "--sram", "8KB", "--flash", "64KB",
            "--init", SEEDS[0], "--init", SEEDS[1], "--epochs", "1", "--no-final", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        recs, stored = s.records(), s.meta().config
    assert [r.trial.genome for r in recs[:2]] == SEEDS
    assert [r.trial.origin for r in recs[:2]] == ["seed", "seed"]
    assert all(r.trial.origin != "seed" for r in recs[2:])
    assert stored["init"] == SEEDS
    assert main(["resume", str(out), "--quiet"]) == 0  # the warm start replays from storage
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        assert s.records() == recs


@pytest.mark.parametrize(
    "init, message",
    [("zoo:nope", "unknown zoo architecture 'nope'"), ("conv_k3_s1_c7-gap", "bad seed genome")],
)
def test_bad_seeds_are_one_line_errors_before_a_run_exists(
    init: str, message: str, tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["search", "--data", str(tiny_npz), "--init", init, "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (out / DB_NAME).exists()


def test_init_from_a_config_file(tmp_path: Path) -> None:
    from tinyevo.cli.main import build_parser
    from tinyevo.cli.search import config_from_args

    toml = tmp_path / "run.toml"
    toml.write_text('init = ["zoo", "conv_k3_s1_c8-gap"]\n')
    cfg = config_from_args(build_parser().parse_args(["search", "--config", str(toml)]))
    assert cfg.init == ("zoo", "conv_k3_s1_c8-gap")
    cfg = config_from_args(build_parser().parse_args(["search", "--config", str(toml), "--init", "lenet5-like"]))
    assert cfg.init == ("lenet5-like",)  # the flag wins
    toml.write_text("init = 3\n")
    assert main(["search", "--config", str(toml), "--out", str(tmp_path / "r")]) == 2


def test_zoo_lists_known_architectures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"chain", "nb201"} <= {r["space"] for r in rows}
    assert all(r["genome"] and r["source"] for r in rows)
    assert main(["zoo", "--space", "chain"]) == 0
    assert "resnet8-like" in capsys.readouterr().out
    assert main(["zoo", "--space", "nope"]) == 2


def test_several_objectives_default_to_nsga2_unless_a_strategy_is_named() -> None:
    from tinyevo.run.config import build_config
    from tinyevo.strategies import DEFAULT_STRATEGY

    assert build_config().strategy == DEFAULT_STRATEGY
    assert build_config(objectives=["val_acc:max", "latency_ms:min"]).strategy == "nsga2"
    named = build_config(objectives=["val_acc:max", "latency_ms:min"], strategy="random")
    assert named.strategy == "random"


def test_the_tflm_planner_prices_sram_as_the_tflm_arena(tmp_path: Path, tiny_npz: Path) -> None:
    from tinyevo.cost import estimate_cost
    from tinyevo.data import load_dataset
    from tinyevo.run.assembly import make_space
    from tinyevo.run.config import RunConfig

    out = tmp_path / "run"
    argv = ["search", "--data", str(tiny_npz), "--budget", "3", "--sram", "8KB", "--planner", "tflm",
            "--epochs", "1", "--no-final", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        recs, stored = s.records(), s.meta().config
    assert stored["limits"]["planner"] == "tflm"
    config = RunConfig.from_json(stored)
    data = load_dataset(str(tiny_npz), seed=config.seed, val_fraction=config.data.val_fraction)
    space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
    differs = 0
    for r in recs:
        ir = space.decode(space.parse(r.trial.genome))
        tflm = estimate_cost(ir, device="stm32f412", planner="tflm").peak_sram_bytes
        assert r.cost["peak_sram_bytes"] == tflm
        differs += tflm != estimate_cost(ir, device="stm32f412").peak_sram_bytes
    assert differs  # the planner matters for these trials, so the check above can tell them apart
    with pytest.raises(SystemExit) as exc:
        main(["search", "--planner", "greedy", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('planner = "greedy"\n')
    assert main(["search", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2


def test_prune_ratio_in_final_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("[final]\nprune_ratio = 0.5\n")
    assert main(["search", "--config", str(toml), "--out", str(tmp_path / "r")]) == 2
    assert "prune_ratio in [final] is not supported" in capsys.readouterr().err
