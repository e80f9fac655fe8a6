"""``tinyevo estimate``: JSON keys, limit checks, conventions and errors."""

from __future__ import annotations

import json

import pytest

from tinyevo.cli.main import main
from tinyevo.cost import estimate_cost
from tinyevo.spaces import create_space

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
KEYS = {"macs", "params", "weight_bytes", "flash_bytes", "peak_sram_bytes", "latency_ms", "energy_mj"}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["estimate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_matches_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, NB201, "--space", "nb201", "--device", "stm32f746", "--resolution", "16")
    assert KEYS <= set(out)
    space = create_space("nb201", input_shape=(3, 16, 16))
    report = estimate_cost(space.decode(space.parse(NB201)), device="stm32f746")
    for key, value in report.as_metrics().items():
        assert out[key] == pytest.approx(value)
    assert out["input_shape"] == [3, 16, 16]
    assert out["peak_op"] == report.memory.peak_op
    # the default prices the whole 32-bit TFLM arena: the planned head plus the persistent tail
    assert out["planner"] == "tflm-mcu" and out["sram_runtime"] == "SRAM (TFLM arena, 32-bit)"
    assert out["sram_head_bytes"] + out["sram_persistent_bytes"] == out["peak_sram_bytes"]
    assert out["sram_persistent_bytes"] > 0
    optimal = run_json(capsys, NB201, "--space", "nb201", "--resolution", "16", "--planner", "optimal")
    assert sum(t["bytes"] for t in optimal["live_at_peak"]) == optimal["peak_sram_bytes"]
    assert optimal["sram_persistent_bytes"] == 0 and "optimal" in optimal["sram_runtime"]
    # the device's SRAM and flash become limits
    assert set(out["limits"]) == {"peak_sram_bytes", "flash_bytes"} and out["within_limits"] is True


def test_limit_checks(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, NB201, "--space", "nb201", "--device", "stm32f746", "--resolution", "16",
                   "--sram", "8KB", "--latency-ms", "1e6")
    assert out["limits"]["peak_sram_bytes"] == {"limit": 8192, "ok": out["peak_sram_bytes"] <= 8192}
    assert out["limits"]["peak_sram_bytes"]["ok"] is False
    assert out["limits"]["latency_ms"]["ok"] is True
    assert out["within_limits"] is False


def test_weights_limit(capsys: pytest.CaptureFixture[str]) -> None:
    base = [NB201, "--space", "nb201", "--resolution", "16"]
    out = run_json(capsys, *base, "--weights", "1KB")
    assert out["flash_bytes"] > out["weight_bytes"] > 1024
    assert out["limits"] == {"weight_bytes": {"limit": 1024, "ok": False}}
    roomy = run_json(capsys, *base, "--weights", f"{out['weight_bytes']}B")
    assert roomy["limits"]["weight_bytes"]["ok"] is True and roomy["within_limits"] is True


def test_conventions_and_planners(capsys: pytest.CaptureFixture[str]) -> None:
    # a 64-channel input (64 KB) dominates the peak while the stem runs, unless input buffers are not counted
    base = ["|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "--space", "nb201",
            "--input-channels", "64"]
    mcunet = run_json(capsys, *base, "--planner", "optimal")
    munas = run_json(capsys, *base, "--planner", "optimal", "--convention", "munas")
    tflm = run_json(capsys, *base, "--planner", "tflm")
    assert mcunet["peak_sram_bytes"] == 64 * 1024 + 16 * 1024 and mcunet["peak_op"] == "stem"
    assert munas["peak_sram_bytes"] < mcunet["peak_sram_bytes"] <= tflm["peak_sram_bytes"]
    assert mcunet["latency_ms"] is None and mcunet["energy_mj"] is None  # no device
    f32 = run_json(capsys, *base, "--planner", "optimal", "--precision", "float32")
    assert f32["peak_sram_bytes"] == 4 * mcunet["peak_sram_bytes"]
    default = run_json(capsys, *base)  # tflm-mcu: TFLM's head plus its 32-bit persistent tail
    assert default["peak_sram_bytes"] >= tflm["peak_sram_bytes"] + default["sram_persistent_bytes"]


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", NB201, "--space", "nb201", "--device", "rp2040", "--resolution", "16",
                 "--sram", "8KB", "--weights", "1KB", "--ops"]) == 0
    text = capsys.readouterr().out
    for word in ("MACs", "weights", "SRAM (TFLM arena, 32-bit)", "persistent", "latency", "energy",
                 "live tensors", "violates", "CONV_2D", "weight_bytes"):
        assert word in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nonsense", "--space", "nb201"], "malformed NB201"),
        ([NB201, "--space", "nb201", "--device", "nosuch"], "unknown device"),
        ([NB201, "--space", "nb201", "--latency-ms", "5"], "need --device"),
        ([NB201, "--space", "nb201", "--sram", "5 parsecs"], "unit"),
    ],
)
def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["estimate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
