"""At 80 columns (and in piped output) the progress line keeps its counts and tables keep every genome whole, on
one line, so that it can be copied (issue 16)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from run_fakes import fake_config, fake_parts

from tinyevo.cli.main import main
from tinyevo.cli.search import ProgressView
from tinyevo.run.engine import ProgressEvent, start_run
from tinyevo.run.view import open_run
from tinyevo.strategies.base import Status, Trial


def _event(kind: str, evaluations: int) -> ProgressEvent:
    best = Trial(number=3, genome="g", status=Status.OK, metrics={"val_acc": 0.9321})
    return ProgressEvent(kind=kind, trials=57, evaluations=evaluations, budget=140, ok=40, infeasible=16,  # type: ignore[arg-type]
                         failed=1, best=best, elapsed_s=1.0)


def _progress_output(width: int) -> str:
    buf = io.StringIO()
    view = ProgressView(Console(file=buf, width=width), objective="val_acc")
    for kind, n in (("start", 0), ("trial", 12), ("trial", 112), ("search-done", 112), ("done", 112)):
        view(_event(kind, n))
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_progress_keeps_its_counts(width: int) -> None:
    out = _progress_output(width)
    line = next(ln for ln in out.splitlines() if "evals" in ln)
    assert "112/140 evals | trials 57 | best 93.21% | feasible 72% | failed 1" in line, out
    assert "…" not in out and len(line.rstrip()) <= width
    assert ("ETA" in line) == (width >= ProgressView.WIDE)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = fake_config(budget=10)
    out = tmp_path_factory.mktemp("narrow") / "run"
    start_run(cfg, run_dir=out, parts=fake_parts(cfg))
    return out


@pytest.mark.parametrize("columns", ["80", "60", "250"])
def test_show_prints_every_genome_whole_on_one_line(
    run_dir: Path, columns: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", columns)  # stdout is captured (piped): rich uses COLUMNS, else 80
    assert main(["show", str(run_dir), "--top", "50"]) == 0
    out = capsys.readouterr().out
    genomes = {r.trial.genome for r in open_run(run_dir).records}
    assert len(genomes) >= 5 and all(len(g) > 60 for g in genomes)  # longer than a narrow column
    lines = out.splitlines()
    for genome in genomes:
        assert any(genome in line for line in lines), (genome, out)
    assert "…" not in out
