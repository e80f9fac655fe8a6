"""``tinyevo devices``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyevo.cli.main import main


def test_lists_builtin_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"stm32f746", "stm32f412", "stm32h743", "nrf52840", "rp2040", "esp32s3"} <= set(rows)
    assert rows["stm32f746"]["sram_bytes"] == 320 * 1024 and rows["stm32f746"]["clock_mhz"] == 216
    assert main(["devices"]) == 0
    text = capsys.readouterr().out
    assert "stm32h743" in text and "480 MHz" in text


def test_device_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[devices.cli-test-board]\ncore = "cortex-m7"\nclock_mhz = 300\nsram = "1MB"\n'
                 'flash = "4MB"\nactive_power_mw = 100\n')
    assert main(["devices", "--device-file", str(f), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cli-test-board"]["sram_bytes"] == 1024 * 1024
    bad = tmp_path / "bad.toml"
    bad.write_text("[devices.x]\ncore = 3\n")
    assert main(["devices", "--device-file", str(bad)]) == 2
    assert "core" in capsys.readouterr().err
