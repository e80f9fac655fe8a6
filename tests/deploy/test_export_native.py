"""``tinyevo export RUN --format c-native``: the .tflite, the native C model generated from it, bit-exact with
TFLite-Micro on the test rows, its arena equal to the cost model's ``native`` estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torchao", reason="needs the tinyevo[deploy] extra (torchao)")
pytest.importorskip("litert_torch", reason="needs the tinyevo[deploy] extra (litert-torch)")
pytest.importorskip("tflite_micro", reason="needs the tinyevo[deploy] extra (tflite-micro)")

from tinyevo.cli.main import main
from tinyevo.codegen.host import find_cc


@pytest.mark.skipif(find_cc() is None, reason="needs a C compiler (cc / gcc / clang) on the PATH")
def test_export_c_native_is_bit_exact_with_tflm(run_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "native"
    code = main(["export", str(run_dir), "--format", "c-native", "--out", str(out), "--test-samples", "60",
                 "--calibration-samples", "128", "--qat", "never", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    native = doc["native"]
    assert native["bit_exact"]["rows"] == 60 and native["bit_exact"]["bit_exact"] is True
    assert native["arena_bytes"] == native["estimated_arena_bytes"]
    assert native["arena_bytes"] < doc["arena_bytes_mcu32"]  # no interpreter tail, in-place kernels
    header = (out / "tinyevo_model.h").read_text()
    assert f"#define TINYEVO_MODEL_ARENA_BYTES   {native['arena_bytes']} " in header
    assert (out / "tinyevo_model.c").is_file() and (out / "model.tflite").is_file()
    assert json.loads((out / "report.json").read_text())["native"]["bit_exact"]["bit_exact"] is True
