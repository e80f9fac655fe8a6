"""Rough edges a new user hits (issue 16): one-line errors, closed pipes, readable output at 80 columns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinyevo.cli.main import main

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.mark.parametrize("argv", [
    ["estimate", NB201, "--space", "nb201", "--json", "--ops"],
    ["devices", "--json"],
])
def test_closed_stdout_pipe_exits_without_a_traceback(argv: list[str]) -> None:
    # `tinyevo estimate --json | head`: the reader is gone before the command writes
    p = subprocess.Popen([sys.executable, "-m", "tinyevo.cli.main", *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    code = p.wait(timeout=1800)  # a hang guard only
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 1


def test_a_text_file_named_npz_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "x.npz"
    bad.write_text("label,pixel0\n1,0\n")
    assert main(["search", "--data", str(bad), "--budget", "1", "--no-final", "-q",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "x.npz is not a valid .npz archive" in err and "pickle" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--sram", "64"], "--sram 64: give a unit, e.g. 64KB or 64B"),
        (["search", "--flash", "1.5"], "--flash 1.5: give a unit, e.g. 1.5KB or 1.5B"),
        (["search", "--weights", " 4096 "], "--weights 4096: give a unit, e.g. 4096KB or 4096B"),
        (["estimate", NB201, "--space", "nb201", "--sram", "64"], "--sram 64: give a unit"),
        (["tinynas", "--device", "stm32f412", "--flash", "100"], "--flash 100: give a unit"),
    ],
)
def test_a_size_flag_without_a_unit_is_an_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


@pytest.mark.parametrize(("line", "message"), [
    ("sram = 64", "sram 64: give a unit, e.g. 64KB or 64B"),
    ('flash = "512"', "flash 512: give a unit, e.g. 512KB or 512B"),
])
def test_a_size_in_a_config_file_without_a_unit_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    (tmp_path / "run.toml").write_text(line + "\n")
    assert main(["search", "--config", str(tmp_path / "run.toml"), "-q"]) == 2
    assert message in capsys.readouterr().err


def test_sizes_with_units_still_work() -> None:
    from tinyevo.run.config import build_config

    cfg = build_config({"flash": "2KB"}, sram="64B", weights="1.5 KB")
    assert (cfg.limits.sram, cfg.limits.flash, cfg.limits.weights) == (64, 2048, 1536)


def test_an_objective_nothing_produces_is_one_line_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--objective", "accuracy", "--budget", "1", "-q", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown objective metric 'accuracy'" in err
    assert "val_acc" in err and "peak_sram_bytes" in err
    assert not (tmp_path / "r").exists()


def test_a_search_says_first_what_it_does_and_which_limits_are_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per item (stderr is captured, so rich reads COLUMNS)
    run = tmp_path / "run"
    assert main(["search", "--sram", "8KB", "--budget", "1", "--epochs", "1", "--no-final", "-q",
                 "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "data digits: 1x8x8 inputs, 10 classes, " in err and " train / " in err
    assert "space chain, strategy " in err and "estimator train (1 epochs)" in err
    # --sram alone: the digits demo's 64 KB flash limit no longer applies, and the output says so
    assert "limits in force: peak_sram_bytes <= 8.0 KB (--sram); flash_bytes <= 1.00 MB (device stm32f412)" in err
    assert "digits demo limits" in err and "flash is now the device's flash" in err
    assert f"run directory: {run}" in err


def test_limit_sources_name_flag_config_device_and_demo() -> None:
    from tinyevo.cli._startinfo import limit_sources
    from tinyevo.run.assembly import make_limits
    from tinyevo.run.config import build_config

    def sources(given: dict[str, str], **flags: object) -> dict[str, str]:
        cfg = build_config(None, **flags)
        return limit_sources(cfg, make_limits(cfg.limits).bounds(), given)

    assert sources({}) == {"peak_sram_bytes": "digits demo", "flash_bytes": "digits demo"}
    assert sources({"device": "--device"}, device="stm32f412") == {
        "peak_sram_bytes": "device stm32f412", "flash_bytes": "device stm32f412"}
    assert sources({"flash": "config file", "macs": "--macs"}, flash="32KB", macs=1e6) == {
        "peak_sram_bytes": "device stm32f412", "flash_bytes": "config file", "macs": "--macs"}
