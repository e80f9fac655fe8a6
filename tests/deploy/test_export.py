"""Quantise, export and run on the real TFLite-Micro interpreter; compare accuracy and arena with the estimate.

These tests need the optional ``tinyevo[deploy]`` extra (CI installs it) and skip without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from conftest import Trained

from tinyevo.cli.main import main
from tinyevo.cost import estimate_cost
from tinyevo.deploy import DeployError, ExportOptions, QuantConfig, export_model
from tinyevo.deploy.tflm import inspect_flatbuffer, measure_arena, run_tflm

FAST = QuantConfig(calibration_samples=256, qat_mode="never")


@pytest.fixture(scope="module")
def c_export(tmp_path_factory: pytest.TempPathFactory, trained: Trained) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("c")
    report = export_model(trained.ir, trained.state, trained.data, fmt="c", out_dir=out,
                          options=ExportOptions(quant=FAST, name="digits_net"))
    return out, report


def test_int8_model_on_tflm_matches_pytorch_int8_and_the_estimate(c_export: tuple[Path, object],
                                                                  trained: Trained) -> None:
    out, report = c_export
    assert report.int8 and report.test_samples == len(trained.data.x_test)
    # the proof: TFLM's int8 accuracy within 0.5 points of PyTorch's int8 accuracy, little lost to int8
    assert abs(report.int8_accuracy_tflm - report.int8_accuracy_torch) <= 0.005
    assert report.tflm_torch_agreement >= 0.99
    assert report.float_accuracy_torch > 0.9
    assert report.int8_accuracy_torch >= report.float_accuracy_torch - 0.03
    # memory: TFLM's planned activations equal the cost model's TFLM-planner estimate; the optimal-order
    # estimate is a lower bound: TFLM runs the projection shortcut after the depthwise branch
    assert report.arena_head_bytes == pytest.approx(report.estimated_peak_sram_tflm_bytes, rel=0.02)
    assert estimate_cost(trained.ir, planner="optimal").peak_sram_bytes <= report.arena_head_bytes
    # the 32-bit MCU arena: measured head + the tail modelled for 4-byte pointers (smaller than the host's),
    # which the default planner (tflm-mcu) estimates before export
    assert report.arena_bytes_mcu32 == report.arena_head_bytes + report.arena_tail_mcu32_bytes
    assert 0 < report.arena_tail_mcu32_bytes < report.arena_tail_bytes
    assert report.arena_required_mcu32_bytes >= report.arena_bytes_mcu32
    assert report.estimated_peak_sram_bytes == pytest.approx(report.arena_required_mcu32_bytes, rel=0.02)
    assert report.arena_bytes >= report.arena_head_bytes + report.arena_tail_bytes - 16
    assert report.tflite_bytes > report.params  # int8 weights, int32 biases and the flatbuffer around them
    assert 0.5 < report.estimated_flash_bytes / report.tflite_bytes < 1.5
    doc = json.loads((out / "report.json").read_text())
    for key in ("tflite_bytes", "arena_bytes", "arena_bytes_mcu32", "estimated_flash_bytes",
                "estimated_peak_sram_bytes",
                "int8_accuracy_torch", "int8_accuracy_tflm"):
        assert doc[key] is not None


def test_flatbuffer_is_int8_nhwc_without_boundary_transposes(c_export: tuple[Path, object]) -> None:
    out, report = c_export
    model = (out / "digits_net.tflite").read_bytes()
    assert len(model) == report.tflite_bytes
    info = inspect_flatbuffer(model)
    assert info.tensors[info.inputs[0]].shape == (1, 8, 8, 1)
    assert info.tensors[info.inputs[0]].dtype == "int8" and info.tensors[info.outputs[0]].dtype == "int8"
    assert not {"TRANSPOSE", "QUANTIZE", "DEQUANTIZE", "PAD", "RESHAPE"} & set(info.op_names())
    assert info.op_names()[0] == "DEPTHWISE_CONV_2D"  # a 1-input-channel conv runs as depthwise
    assert all(t.name == "" for t in info.tensors)  # names stripped
    arena = measure_arena(model)
    assert arena.required == report.arena_bytes and arena.head == report.arena_head_bytes
    with pytest.raises(DeployError, match="arena"):
        run_tflm(model, np.zeros((1, 1, 8, 8), np.float32), arena_size=arena.required // 2)


def test_c_header_compiles_with_the_measured_arena(c_export: tuple[Path, object], tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out, report = c_export
    arena = json.loads((out / "digits_net_arena.json").read_text())
    assert arena["arena_bytes"] == report.arena_bytes
    src = tmp_path / "main.c"
    src.write_text(f'#include "{out}/digits_net.h"\n#include <stdio.h>\n'
                   "int main(void) { printf(\"%c%c%c%c %u\\n\", digits_net[4], digits_net[5], digits_net[6],"
                   " digits_net[7], (unsigned)DIGITS_NET_ARENA_BYTES); return (int)(digits_net_len == 0); }\n")
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", str(src), "-o", str(tmp_path / "m")], check=True,
                   capture_output=True, timeout=1800)  # hang guards only, never a speed check
    run = subprocess.run([str(tmp_path / "m")], check=True, capture_output=True, text=True, timeout=1800)
    assert run.stdout.split() == ["TFL3", str(report.arena_bytes)]


def test_onnx_export_is_one_file_with_the_torch_accuracy(tmp_path: Path, trained: Trained) -> None:
    pytest.importorskip("onnxruntime", reason="needs the tinyevo[deploy] extra (onnxruntime)")
    pytest.importorskip("onnxscript", reason="needs the tinyevo[deploy] extra (onnxscript)")
    report = export_model(trained.ir, trained.state, trained.data, fmt="onnx", out_dir=tmp_path,
                          options=ExportOptions(test_samples=100))
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".json"] == ["model.onnx"]
    assert report.accuracy_onnx == pytest.approx(report.float_accuracy_torch, abs=0.011)


def test_bad_requests_give_clear_errors(tmp_path: Path, trained: Trained) -> None:
    with pytest.raises(DeployError, match="unknown export format"):
        export_model(trained.ir, trained.state, trained.data, fmt="zip", out_dir=tmp_path)  # type: ignore[arg-type]
    rgb = trained.data.with_splits(x_train=np.repeat(trained.data.x_train, 3, axis=1),
                                   x_val=np.repeat(trained.data.x_val, 3, axis=1),
                                   x_test=np.repeat(trained.data.x_test, 3, axis=1))
    with pytest.raises(DeployError, match="input channel"):
        export_model(trained.ir, trained.state, rgb, fmt="tflite", out_dir=tmp_path)
    with pytest.raises(DeployError, match="not a valid .tflite"):
        inspect_flatbuffer(b"this is not a flatbuffer")


def test_cli_exports_the_best_retrained_trial(run_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["export", str(run_dir), "--format", "tflite", "--out", str(out), "--calibration-samples", "128",
                 "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert (out / "model.tflite").stat().st_size == doc["tflite_bytes"]
    assert json.loads((out / "report.json").read_text()) == doc
    assert abs(doc["int8_accuracy_tflm"] - doc["int8_accuracy_torch"]) <= 0.005
    assert doc["test_samples"] == 359 and doc["format"] == "tflite" and doc["int8"] is True


@pytest.mark.parametrize("trial,message", [
    (1, "trial 1 failed"), (2, "trial 2 is infeasible"), (3, "no trained weights"), (9, "no trial 9"),
])
def test_cli_refuses_trials_that_cannot_be_exported(run_dir: Path, tmp_path: Path, trial: int, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(run_dir), "--trial", str(trial), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
