"""`tinyevo search` refuses bad input at the edge: one line naming the option, exit code 2, no traceback, nothing
searched and no run directory made (issue 17 "Bad input" / "Silently broken settings", issue 18 item 3)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyevo.run.engine as engine
from tinyevo.cli.main import main


class SearchStarted(Exception):
    """Raised by the stand-in for start_run: the input was accepted and a search would have started."""


@pytest.fixture(autouse=True)
def no_search(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # a default run directory goes under ./runs/ here
    def start_run(*args: Any, **kwargs: Any) -> Any:
        raise SearchStarted

    monkeypatch.setattr(engine, "start_run", start_run)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    """(exit code or "search", stderr) of ``tinyevo search ARGV`` run in-process."""
    try:
        code: object = main(["search", "--budget", "1", "--no-final", "-q", *argv])
    except SearchStarted:
        code = "search"
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def toml_value(v: Any) -> str:
    """A TOML literal of ``v`` (written here, not with the code under test)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def write_config(path: Path, top: dict[str, Any], tables: dict[str, dict[str, Any]]) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for name, body in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(code: object, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyevo: error: "), err
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "top, tables, needle",
    [
        ({}, {"train": {"epochs": 2.5}}, "train.epochs must be an integer, got 2.5"),
        ({}, {"train": {"batch_size": 32.0}}, "train.batch_size must be an integer"),
        ({}, {"train": {"lr": math.inf}}, "train.lr must be a finite number"),
        ({}, {"train": {"weight_decay": math.nan}}, "train.weight_decay must be a finite number"),
        ({}, {"train": {"grad_clip": -1}}, "train.grad_clip must be > 0"),
        ({}, {"final": {"momentum": "0.9"}}, "final.momentum must be a number, got '0.9'"),
        ({"space": "nb201"}, {"space_options": {"channels": 0}}, "channels = 0"),
        ({}, {"space_options": {"mutations": [1]}}, "space_options.mutations"),
        ({}, {"space_options": {"max_layer": 3}}, "did you mean 'max_layers'"),
        ({}, {"space_options": {"channels": [4.5]}}, "space_options.channels item must be an integer"),
        ({"objectives": 5}, {}, "objectives must be"),
        ({"executor": "dask", "scheduler": 8786}, {}, "--scheduler must be a string, got 8786"),
        ({"workers": "2"}, {}, "--workers must be an integer, got '2'"),
        ({"seed": 2**63 - 1, "max_trials": -3}, {}, "max_trials must be >= 1"),
        ({"sram": "1e400KB"}, {}, "sram must be a finite size"),
        ({"out": 7}, {}, "out in"),
    ],
)
def test_bad_config_values(tmp_path: Path, capsys: pytest.CaptureFixture[str], top: dict[str, Any],
                           tables: dict[str, dict[str, Any]], needle: str) -> None:
    cfg = write_config(tmp_path / "run.toml", top, tables)
    code, err = run_cli(["--config", str(cfg), "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--seed", str(2**70)], "--seed must be <= 9223372036854775807"),
        (["--sram", "1e400KB"], "--sram must be a finite size"),
        (["--flash", "1e400KB"], "--flash must be a finite size"),
        (["--weights", "1e400B"], "--weights must be a finite size"),
        (["--macs", "inf"], "--macs must be a finite number"),
        (["--epochs", "0"], "train.epochs must be >= 1"),
        (["--sram", "1B"], "peak_sram_bytes <= 1 B"),  # searched 40 infeasible trials and exited 0 before
        (["--flash", "1KB"], "flash_bytes <= 1.0 KB"),
    ],
)
def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, err = run_cli([*argv, "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_unreadable_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.toml").write_bytes("data = \"d\xe9j\xe0\"\n".encode("latin-1"))
    (tmp_path / "deep.toml").write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    for path, needle in ((tmp_path / "latin1.toml", "not UTF-8"), (tmp_path / "deep.toml", "too deeply"),
                         (tmp_path, "is a directory")):
        code, err = run_cli(["--config", str(path)], capsys)
        assert_one_line_error(code, err, needle)


def test_out_that_cannot_be_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    code, err = run_cli(["--out", str(afile)], capsys)
    assert_one_line_error(code, err, "is a file")
    code, err = run_cli(["--out", str(afile / "sub" / "run")], capsys)
    assert_one_line_error(code, err, "is a file, not a directory")


def test_a_feasible_limit_still_searches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: the digits demo limits (4 KB SRAM) and a tight but reachable 1 KB are not refused."""
    assert run_cli(["--out", str(tmp_path / "a")], capsys)[0] == "search"
    assert run_cli(["--sram", "1KB", "--out", str(tmp_path / "b")], capsys)[0] == "search"


# --- fuzz: whatever a config file or a size flag holds, the CLI answers with one line and exit 2, or searches ---

KEYS = ["data", "val_fraction", "space", "strategy", "estimator", "teacher", "device", "sram", "flash", "weights",
        "sram_convention", "planner", "latency_ms", "energy_mj", "macs", "params", "precision", "objectives",
        "budget", "time", "max_trials", "workers", "executor", "scheduler", "batch_size", "trial_timeout", "seed",
        "init", "out", "soft", "soft_penalty", "device_file"]
STRATEGY_KEYS = ["population", "offspring", "generations", "selection", "tournament_size", "parents", "mutation_rate",
                 "crossover_prob", "initialization", "popsize"]
FIDELITY_KEYS = ["epochs_fraction", "data_fraction", "width", "resolution", "epochs"]
PREFILTER_KEYS = ["proxy", "pool", "size"]
TRAIN_KEYS = ["epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "schedule", "warmup_epochs",
              "label_smoothing", "grad_clip", "augment", "threads", "time_limit_s", "prune_ratio", "device",
              "distill_alpha", "restore_best", "train_on_val", "epocs"]
SPACE_KEYS = ["max_layers", "max_dense", "channels", "kernels", "strides", "heads", "mutations", "num_classes"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
    st.sampled_from(["64KB", "1e400KB", "-1KB", "0B", "30m", "none", "digits", "nb201", "val_acc:up", "cuda:9"]),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["a", "epochs"]), scalars,
                                                                           max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
       train=st.dictionaries(st.sampled_from(TRAIN_KEYS), values, max_size=2),
       space=st.dictionaries(st.sampled_from(SPACE_KEYS), values, max_size=2),
       extra=st.dictionaries(st.sampled_from(["strategy_options", "fidelity", "prefilter"]),
                             st.dictionaries(st.sampled_from(STRATEGY_KEYS + FIDELITY_KEYS + PREFILTER_KEYS), values,
                                             max_size=2), max_size=1),
       size=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True).map(lambda x: f"{x!r}KB"),
                      st.text(max_size=6)))
def test_fuzz_config_and_sizes_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       top: dict[str, Any], train: dict[str, Any],
                                                       space: dict[str, Any], extra: dict[str, Any],
                                                       size: str | None) -> None:
    if isinstance(top.get("out"), str):
        del top["out"]  # a valid path would be a real run directory
    tables = {k: v for k, v in (("train", train), ("space_options", space), *extra.items()) if v}
    cfg = write_config(tmp_path / "fuzz.toml", top, tables)
    argv = ["--config", str(cfg)] + ([f"--sram={size}"] if size is not None else [])
    code, err = run_cli(argv, capsys)
    assert "Traceback" not in err
    if code != "search":
        assert_one_line_error(code, err)


@pytest.mark.parametrize("keys", [("x", "y"), ("x_train", "y_train")])
def test_empty_labels_with_a_classes_array(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           keys: tuple[str, str]) -> None:
    """An empty ``y`` next to a ``classes`` array raised numpy's ValueError (max of an empty array)."""
    import numpy as np

    path = tmp_path / "empty.npz"
    np.savez(path, **{keys[0]: np.zeros((0, 1, 8, 8), np.float32), keys[1]: np.zeros((0,), np.int64)},
             classes=np.array(["a", "b"]))
    code, err = run_cli(["--data", str(path)], capsys)
    assert_one_line_error(code, err, "empty")
