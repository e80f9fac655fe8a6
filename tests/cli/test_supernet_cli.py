"""``tinyevo supernet train`` and ``supernet score`` on tiny data, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.cli.main import main
from tinyevo.supernet import load_supernet

TINY = ["--resolution", "8,12", "--width", "0.5,1.0", "--depths", "1,2", "--kernels", "3,5", "--expands", "1,3",
        "--stage-strides", "1,2", "--stage-channels", "8,16/16,24", "--stem-channels", "8", "--block-types",
        "mb,conv", "--batch-size", "32", "--threads", "1", "--quiet"]


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = (rng.normal(size=(120, 12, 12)) + y[:, None, None]).astype(np.float32)
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    return path


def test_train_then_score(npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sn"
    assert main(["supernet", "train", "--data", str(npz), "--epochs", "2", "--out", str(out), *TINY]) == 0
    torch.load(out / "supernet.pt", weights_only=True)
    info = json.loads((out / "supernet.json").read_text())
    assert info["space"]["resolutions"] == [8, 12] and info["space"]["stage_channels"] == [[8, 16], [16, 24]]
    assert info["training"]["recipe"]["epochs"] == 2 and len(info["training"]["curve"]) == 2
    net, _ = load_supernet(out)
    assert net.space.block_types == ("mb", "conv")
    capsys.readouterr()
    genome = str(net.largest())
    assert main(["supernet", "score", str(out), genome, "--data", str(npz), "--sample", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["genome"] == genome and len(rows) == 3
    assert all(0.0 <= r["val_acc"] <= 1.0 for r in rows)


def test_tinynas_picks_the_subspace(npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "sn"
    args = ["supernet", "train", "--data", str(npz), "--epochs", "1", "--out", str(out), *TINY, "--tinynas",
            "--sram", "4KB", "--tinynas-samples", "5"]
    assert main(args) == 0
    info = json.loads((out / "supernet.json").read_text())
    choice = info["training"]["tinynas"]
    assert info["space"]["resolutions"] == [choice["resolution"]] and choice["resolution"] in (8, 12)
    assert info["space"]["width_multipliers"] == [choice["width_multiplier"]]


def test_refuses_other_spaces(npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["supernet", "train", "--space", "chain", "--data", str(npz), "--out", str(tmp_path / "x")]) == 2
    assert "blocks" in capsys.readouterr().err
