"""`tinyevo search / resume / show / report` end to end on tiny generated data (real estimator, 1 epoch)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tinyevo.cli.main import main
from tinyevo.storage import DB_NAME, SQLiteStorage


@pytest.fixture(scope="module")
def tiny_npz(make_tiny_npz: Callable[..., Path]) -> Path:
    return make_tiny_npz(60, seed=0, n_test=15)


FAST = ["--epochs", "1", "--final-epochs", "1", "--strategy", "random", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run1"
    code = main(
        [
            "search",
            "--data",
            str(tiny_npz),
            "--budget",
            "3",
            "--sram",
            "2KB",
            "--flash",
            "16KB",
            "--out",
            str(out),
            "--seed",
            "1",
            *FAST,
        ]
    )
    assert code == 0
    return out


def test_search_end_to_end_on_tiny_data(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        recs = s.records()
        finals = s.finals()
        meta = s.meta()
    evaluated = [r for r in recs if r.trial.status.value != "infeasible"]
    assert len(evaluated) == 3
    assert meta.config["limits"]["sram"] == 2048 and meta.config["space"]["name"] == "chain"
    for r in recs:
        assert "peak_sram_bytes" in r.cost
        if r.trial.status.value == "ok":
            assert 0.0 <= r.trial.metrics["val_acc"] <= 1.0 and r.trial.metrics["peak_sram_bytes"] <= 2048
    if any(r.trial.ok for r in recs):
        assert len(finals) == 1
        state = torch.load(run_dir / finals[0].weights, weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        assert "test_acc" in finals[0].metrics


def test_show_json_prints_every_trial(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["show", str(run_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        n = s.count()
    assert len(doc) == n
    for obj in doc:
        assert {"genome", "status", "metrics"} <= set(obj)
        assert obj["status"] in ("ok", "infeasible", "failed")


def test_show_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "peak_sram_bytes <= 2.0 KB" in out


def test_report_writes_pngs_and_self_contained_html(run_dir: Path) -> None:
    assert main(["report", str(run_dir)]) == 0
    rep = run_dir / "report"
    pngs = sorted(p.name for p in rep.glob("*.png"))
    assert "val_acc_vs_peak_sram_bytes.png" in pngs and "val_acc_vs_flash_bytes.png" in pngs
    assert "final_curves.png" in pngs  # the retrained model's learning curve
    for p in rep.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (rep / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in page and 'src="http' not in page


def test_resume_of_a_finished_run_adds_nothing(run_dir: Path) -> None:
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        before = s.records()
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        assert s.records() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--budget", "0"], "--budget"),
        (["search", "--budget", "many"], "invalid int"),
        (["search", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["search", "--space", "nope"], "unknown search space 'nope'"),
        (["search", "--device", "nope"], "unknown device 'nope'"),
        (["search", "--estimator", "nope"], "unknown estimator 'nope'"),
        (["search", "--sram", "64 parsecs"], "unit"),
        (["search", "--time", "soon"], "duration"),
        (["search", "--workers", "0"], "--workers"),
        (["search", "--executor", "slurm"], "invalid choice"),
        (["search", "--sram-convention", "tflm"], "invalid choice"),
        (["search", "--weights", "4.5 parsecs"], "unit"),
        (["search", "--scheduler", "127.0.0.1:8786"], "tcp://HOST:PORT"),
        (["search", "--data", "/no/such/file.npz", "--budget", "1"], ""),
        (["search", "--config", "/no/such/run.toml"], "does not exist"),
        (["resume", "/no/such/run"], "not a tinyevo run directory"),
        (["show", "/no/such/run"], "not a tinyevo run directory"),
        (["report", "/no/such/run"], "not a tinyevo run directory"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    try:
        code = main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "search" else [])])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "r" / DB_NAME).exists()


def test_config_file_and_flags(tmp_path: Path) -> None:
    from tinyevo.cli.main import build_parser
    from tinyevo.cli.search import config_from_args

    toml = tmp_path / "run.toml"
    toml.write_text(
        'data = "digits"\nspace = "chain"\nbudget = 7\nsram = "8KB"\ntime = "2m"\nseed = 4\n'
        'objectives = ["val_acc:max", "latency_ms:min"]\n[space_options]\nmax_layers = 4\n'
        "[train]\nepochs = 2\n[final]\nepochs = 5\npareto = true\n"
    )
    args = build_parser().parse_args(["search", "--config", str(toml), "--budget", "9", "--workers", "2"])
    cfg = config_from_args(args)
    assert cfg.budget.trials == 9 and cfg.budget.time_s == 120 and cfg.seed == 4
    assert cfg.limits.sram == 8192 and cfg.limits.flash is None and cfg.limits.device == "stm32f412"
    assert cfg.space.options == {"max_layers": 4} and cfg.estimator.train["epochs"] == 2
    assert cfg.final.pareto and cfg.final.train["epochs"] == 5 and cfg.executor.workers == 2
    assert [o.metric for o in cfg.objectives] == ["val_acc", "latency_ms"]
    bad = tmp_path / "bad.toml"
    bad.write_text("budgett = 3\n")
    assert main(["search", "--config", str(bad)]) == 2


def test_sram_convention_and_weights_from_file_and_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyevo.cli.main import build_parser
    from tinyevo.cli.search import config_from_args

    toml = tmp_path / "run.toml"
    toml.write_text('sram = "2.5KB"\nweights = "4.5KB"\nsram_convention = "munas"\n')
    cfg = config_from_args(build_parser().parse_args(["search", "--config", str(toml)]))
    assert cfg.limits.sram_convention == "munas" and cfg.limits.weights == 4608
    flags = ["search", "--config", str(toml), "--sram-convention", "mcunet", "--weights", "2KB"]
    cfg = config_from_args(build_parser().parse_args(flags))
    assert cfg.limits.sram_convention == "mcunet" and cfg.limits.weights == 2048  # flags win
    bad = tmp_path / "bad.toml"
    bad.write_text('sram_convention = "tflm"\n')
    capsys.readouterr()
    assert main(["search", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--sram-convention must be mcunet or munas, got 'tflm'" in err


def test_search_with_the_munas_convention_and_a_weights_limit(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tinyevo.cost import estimate_cost
    from tinyevo.data import load_dataset
    from tinyevo.run.assembly import make_space
    from tinyevo.run.config import RunConfig

    out = tmp_path / "munas"
    argv = ["search", "--data", str(tiny_npz), "--budget", "2", "--sram", "2KB", "--weights", "3KB",
            "--sram-convention", "munas", "--no-final", "--out", str(out), *FAST]
    assert main(argv) == 0
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        recs, stored = s.records(), s.meta().config
    assert stored["limits"]["sram_convention"] == "munas" and stored["limits"]["weights"] == 3072
    config = RunConfig.from_json(stored)
    data = load_dataset(str(tiny_npz), seed=config.seed, val_fraction=config.data.val_fraction)
    space = make_space(config.space, input_shape=data.input_shape, num_classes=data.num_classes)
    for r in recs:
        report = estimate_cost(space.decode(space.parse(r.trial.genome)), device="stm32f412", planner="optimal",
                               count_input=False, count_output=False)  # munas: activations, optimal order
        assert r.cost["peak_sram_bytes"] == report.peak_sram_bytes
        assert r.cost["weight_bytes"] == report.weight_bytes
        feasible = report.peak_sram_bytes <= 2048 and report.weight_bytes <= 3072
        assert (r.trial.status.value != "infeasible") == feasible
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "weight_bytes <= 3.0 KB" in shown and "peak SRAM convention: munas" in shown
    assert main(["report", str(out)]) == 0
    assert "<td>peak SRAM convention</td><td class=g>munas</td>" in (out / "report" / "report.html").read_text()
    assert main(["resume", str(out), "--quiet"]) == 0  # the stored convention: nothing new to evaluate
    with SQLiteStorage(out / DB_NAME, readonly=True) as s:
        assert s.records() == recs


def test_progress_view_renders_events() -> None:
    import io

    from rich.console import Console

    from tinyevo.cli.search import ProgressView
    from tinyevo.run.engine import ProgressEvent
    from tinyevo.storage import RetrainedModel
    from tinyevo.strategies.base import Status, Trial

    buf = io.StringIO()
    view = ProgressView(Console(file=buf, width=160, force_terminal=False), objective="val_acc")
    best = Trial(number=1, genome="g1", status=Status.OK, metrics={"val_acc": 0.875})
    common = dict(budget=4, ok=1, failed=0, elapsed_s=1.0)
    view(ProgressEvent(kind="start", trials=0, evaluations=0, infeasible=0, best=None, **common))
    view(ProgressEvent(kind="trial", trials=2, evaluations=1, infeasible=1, best=best, trial=best, **common))
    view(ProgressEvent(kind="search-done", trials=2, evaluations=1, infeasible=1, best=best, **common))
    view(
        ProgressEvent(
            kind="final-start",
            trials=2,
            evaluations=1,
            infeasible=1,
            best=best,
            message="retraining 1 model(s)",
            **common,
        )
    )
    final = RetrainedModel(1, "g1", {"test_acc": 0.9}, "final/trial-0001/model.pt")
    view(
        ProgressEvent(
            kind="final-model", trials=2, evaluations=1, infeasible=1, best=best, final=final, **common
        )
    )
    view(ProgressEvent(kind="done", trials=2, evaluations=1, infeasible=1, best=best, **common))
    out = buf.getvalue()
    assert "best 87.50%" in out and "feasible 50%" in out and "1/4" in out
    assert "retrained trial 1: test_acc 90.00%" in out


def test_resume_with_real_training_reproduces_the_lost_trials(run_dir: Path, tmp_path: Path) -> None:
    """A crash that lost the last trials: resume re-trains them to the same metrics (timings aside)."""
    with SQLiteStorage(run_dir / DB_NAME, readonly=True) as s:
        meta, recs = s.meta(), s.records()
    crashed = tmp_path / "crashed"
    with SQLiteStorage(crashed / DB_NAME) as d:
        d.create(meta)
        for r in recs[: len(recs) // 2]:
            d.add(r)
    assert main(["resume", str(crashed), "--quiet"]) == 0
    with SQLiteStorage(crashed / DB_NAME, readonly=True) as s:
        again = s.records()

    def sig(rs: list) -> list:
        return [
            (
                r.number,
                r.trial.genome,
                r.trial.status,
                {k: v for k, v in r.trial.metrics.items() if "time" not in k},
            )
            for r in rs
        ]

    assert sig(again) == sig(recs)
    assert meta.config["estimator"]["train"]["threads"] >= 1  # fixed when the run started


def test_torch_device_sets_where_candidates_and_final_models_train(tiny_npz: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from tinyevo.run.engine import load_run_config

    out = tmp_path / "run"
    assert main(["search", "--data", str(tiny_npz), "--budget", "2", "--torch-device", "auto", "--out", str(out),
                 *FAST]) == 0
    cfg = load_run_config(out)
    assert cfg.estimator.train["device"] == "auto" == cfg.final.train["device"]
    capsys.readouterr()
    assert main(["search", "--data", str(tiny_npz), "--torch-device", "gpu", *FAST]) == 2
    assert "unknown training device 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["search", "--data", str(tiny_npz), "--torch-device", "cuda", "--out", str(tmp_path / "x"),
                     *FAST]) == 2
        assert "sees no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "x").exists()
