"""`tinyevo search --supernet DIR`: candidates scored with the weights they inherit from a trained supernet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyevo.cli.main import main
from tinyevo.errors import ConfigError
from tinyevo.run.config import build_config
from tinyevo.run.supernet_ref import supernet_digest
from tinyevo.run.view import open_run
from tinyevo.spaces import create_space
from tinyevo.supernet import Supernet, save_supernet
from tinyevo.supernet.train import train_supernet
from tinyevo.training import Recipe

SPACE = {"resolutions": (8, 12), "width_multipliers": (0.5, 1.0), "block_types": ("mb", "conv"), "depths": (1, 2),
         "kernels": (3, 5), "expands": (1, 3), "stage_strides": (1, 2), "stage_channels": ((8, 16), (16, 24)),
         "stem_channels": 8}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny .npz data, a supernet trained on it for one epoch through the library)."""
    from tinyevo.data import load_dataset

    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = (rng.normal(size=(90, 12, 12)) + y[:, None, None]).astype(np.float32)
    root = tmp_path_factory.mktemp("search_supernet")
    np.savez(root / "toy.npz", x_train=x, y_train=y, x_test=x[:15], y_test=y[:15])
    data = load_dataset(str(root / "toy.npz"), seed=0)
    space = create_space("blocks", input_shape=data.input_shape, num_classes=data.num_classes, **SPACE)
    net = Supernet(space)
    train_supernet(net, data, Recipe(epochs=1, batch_size=32), seed=0)
    return root / "toy.npz", save_supernet(root / "sn", net.eval())


def _search(data: Path, sn: Path, out: Path, *extra: str) -> int:
    return main(["search", "--data", str(data), "--supernet", str(sn), "--budget", "4", "--out", str(out),
                 "--no-final", "--quiet", "--seed", "1", *extra])


def test_search_scores_with_the_supernet_and_resumes(trained: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data, sn = trained
    run = tmp_path / "run"
    assert _search(data, sn, run, "--device", "nrf52840", "--sram", "256KB", "--flash", "1MB") == 0
    view = open_run(run)
    assert len(view.trials) == 4
    ok = [t for t in view.trials if t.ok]
    assert ok and all(0.0 <= t.metrics["val_acc"] <= 1.0 for t in ok)
    sub = create_space("blocks", input_shape=(1, 12, 12), num_classes=3, **SPACE)
    for t in view.trials:  # every genome is one of the supernet's space (parse refuses others)
        sub.parse(t.genome)
    stored = view.config.estimator  # parsed from the config JSON stored with the run
    assert stored.name == "supernet" and stored.supernet is not None
    assert stored.supernet.path == str(sn.resolve())
    assert stored.supernet.digest == supernet_digest(sn)
    assert view.config.space.name == "blocks" and view.config.space.options["resolutions"] in ((8, 12), [8, 12])

    before = [(t.genome, t.metrics.get("val_acc")) for t in open_run(run).trials]
    assert main(["resume", str(run), "--quiet"]) == 0  # the same supernet: the run resumes
    assert [(t.genome, t.metrics.get("val_acc")) for t in open_run(run).trials] == before

    # a second device's search reuses the same supernet
    assert _search(data, sn, tmp_path / "second", "--device", "stm32f412", "--sram", "96KB", "--flash", "512KB") == 0
    second = open_run(tmp_path / "second")
    assert second.config.estimator.supernet == stored.supernet and any(t.ok for t in second.trials)


def test_resume_refuses_a_changed_supernet(trained: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    data, sn = trained
    copy = tmp_path / "sn"
    shutil.copytree(sn, copy)
    run = tmp_path / "run"
    assert _search(data, copy, run, "--device", "none") == 0
    capsys.readouterr()
    with (copy / "supernet.pt").open("ab") as fh:  # retrained / overwritten since
        fh.write(b"\0")
    assert main(["resume", str(run), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "changed since this run started" in err and len(err.strip().splitlines()) == 1


def test_conflicting_space_options_are_refused(trained: tuple[Path, Path]) -> None:
    data, sn = trained
    with pytest.raises(ConfigError, match="--space chain"):
        build_config(data=str(data), supernet=str(sn), space="chain")
    with pytest.raises(ConfigError, match="resolutions"):
        build_config(data=str(data), supernet=str(sn), space_options={"resolutions": [16]})
    with pytest.raises(ConfigError, match="--estimator train"):
        build_config(data=str(data), supernet=str(sn), estimator="train")
    with pytest.raises(ConfigError, match="cannot read"):
        build_config(data=str(data), supernet=str(data.parent / "missing"))
    same = build_config(data=str(data), supernet=str(sn), space_options={"kernels": [3, 5]})  # same value: fine
    assert same.space.options["depths"] in ((1, 2), [1, 2])


def test_final_retraining_starts_from_the_inherited_weights(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import torch

    from tinyevo import training
    from tinyevo.supernet import load_supernet

    data, sn = trained
    seen: list[tuple[str, object]] = []
    real = training.train_model

    def spy(ir: object, *args: object, **kwargs: object) -> object:
        seen.append((str(ir), kwargs.get("init_state")))
        return real(ir, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", spy)  # the final retraining runs in this process (1 worker)
    run = tmp_path / "run"
    assert main(["search", "--data", str(data), "--supernet", str(sn), "--budget", "3", "--out", str(run),
                 "--device", "none", "--final-epochs", "1", "--quiet", "--seed", "3"]) == 0
    view = open_run(run)
    assert view.finals and len(seen) == 1
    final = view.finals[0]
    init = seen[0][1]
    assert isinstance(init, dict)
    net, _ = load_supernet(sn)
    genome = next(t.genome for t in view.trials if t.number == final.trial)
    want = net.extract(net.genome(genome)).state_dict()
    assert set(init) == set(want) and all(torch.equal(init[k], want[k]) for k in want)
    doc = json.loads((run / final.weights).with_name("metrics.json").read_text())
    assert doc["inherited_from"] == str(sn.resolve())


def test_supernet_scoring_table_reaches_the_scorer(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """``[supernet_scoring]`` is checked, stored with the run and becomes the scorer's ScoreConfig; a search with
    fine-tuned scores runs end to end."""
    from tinyevo.run.assembly import TrainingEvaluator, _cached_estimator
    from tinyevo.supernet.score import ScoreConfig

    data, sn = trained
    table = {"finetune_steps": 3, "finetune_batch_size": 16, "validation_rows": 7}
    cfg = build_config(data=str(data), supernet=str(sn), supernet_scoring=table)
    ev = TrainingEvaluator(cfg.data, cfg.space, cfg.estimator, seed=0)
    est = _cached_estimator(ev.estimator.name, ev.estimator.options, None, ev.estimator.teacher,
                            ev.estimator.fidelity, str(sn), ev.estimator.supernet_scoring)
    assert est.config == ScoreConfig(finetune_steps=3, finetune_batch_size=16, validation_rows=7)
    whole = build_config(data=str(data), supernet=str(sn), supernet_scoring={"validation_rows": 0})
    est = _cached_estimator(whole.estimator.name, whole.estimator.options, None, None, whole.estimator.fidelity,
                            str(sn), whole.estimator.supernet_scoring)
    assert est.config.validation_rows is None  # 0: the whole validation split
    with pytest.raises(ConfigError, match="finetune_steps"):
        build_config(data=str(data), supernet=str(sn), supernet_scoring={"finetune_steps": -1})
    with pytest.raises(ConfigError, match="--supernet"):
        build_config(data=str(data), supernet_scoring={"finetune_steps": 3})

    toml = tmp_path / "run.toml"
    toml.write_text("[supernet_scoring]\nfinetune_steps = 3\nfinetune_batch_size = 16\nvalidation_rows = 7\n")
    run = tmp_path / "run"
    assert _search(data, sn, run, "--device", "none", "--config", str(toml)) == 0
    view = open_run(run)
    assert dict(view.config.estimator.supernet_scoring) == table
    ok = [t for t in view.trials if t.ok]
    # 7 of the validation rows: every score is a multiple of 1/7
    assert ok and all(abs(t.metrics["val_acc"] * 7 - round(t.metrics["val_acc"] * 7)) < 1e-9 for t in ok)


def test_training_line_leaves_out_the_search_plan_when_a_supernet_scores(trained: tuple[Path, Path]) -> None:
    """Candidates scored by a supernet are not trained with the search's [train] plan: the start line says only
    what the final training does (and nothing without one)."""
    from tinyevo.run.sizing import size_run

    data, sn = trained
    with_final = size_run(build_config(data=str(data), supernet=str(sn))).describe()
    assert with_final.startswith("training: final ") and "search" not in with_final
    assert size_run(build_config(data=str(data), supernet=str(sn), final={"enabled": False})).describe() == ""
    trained_run = size_run(build_config(data=str(data))).describe()
    assert trained_run.startswith("training: search ")


def test_start_line_says_how_the_supernet_scores(trained: tuple[Path, Path]) -> None:
    from tinyevo.cli._startinfo import _estimator_note

    data, sn = trained
    plain = build_config(data=str(data), supernet=str(sn))
    tuned = build_config(data=str(data), supernet=str(sn),
                         supernet_scoring={"finetune_steps": 50, "validation_rows": 300})
    assert _estimator_note(plain.estimator, 4) == " (inherited weights)"
    assert _estimator_note(tuned.estimator, 4) == " (inherited weights fine-tuned 50 steps, validation_rows 300)"
    assert _estimator_note(build_config(data=str(data)).estimator, 4) == " (4 epochs)"
