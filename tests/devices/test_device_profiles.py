"""Device registry, built-in profiles, user TOML files, sizes and limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyevo.devices import (
    DEVICES,
    Limits,
    describe_bound,
    format_size,
    get_device,
    load_devices,
    parse_devices,
    parse_size,
)
from tinyevo.errors import ConfigError, UnknownNameError

KB, MB = 1024, 1024 * 1024


# --- sizes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512), ("512B", 512), ("64KB", 64 * KB), ("64kb", 64 * KB), ("64 KiB", 64 * KB), ("64K", 64 * KB),
     ("1MB", MB), ("1.5MB", 3 * MB // 2), ("2M", 2 * MB), (" 320 KB ", 320 * KB), (1000, 1000),
     ("0.5KB", 512)],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "KB", "-1KB", "64XB", "64 K B", "1e", True, -5, None])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_size(bad)  # type: ignore[arg-type]


@given(st.integers(0, 2**40))
def test_parse_size_roundtrips_bytes_and_kb(n: int) -> None:
    assert parse_size(f"{n}B") == n
    assert parse_size(f"{n}KB") == n * 1024


def test_format_size() -> None:
    assert format_size(100) == "100 B"
    assert format_size(64 * KB) == "64.0 KB"
    assert format_size(2 * MB) == "2.00 MB"


# --- profiles -----------------------------------------------------------------------------------------------

EXPECTED = {  # name: (core, MHz, SRAM, flash)
    "stm32f746": ("cortex-m7", 216, 320 * KB, 1 * MB),
    "stm32f412": ("cortex-m4", 100, 256 * KB, 1 * MB),
    "stm32h743": ("cortex-m7", 480, 512 * KB, 2 * MB),
    "nrf52840": ("cortex-m4", 64, 256 * KB, 1 * MB),
    "rp2040": ("cortex-m0plus", 133, 264 * KB, 2 * MB),
    "esp32s3": ("xtensa-lx7", 240, 512 * KB, 8 * MB),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_profiles(name: str) -> None:
    dev = get_device(name)
    core, mhz, sram, flash = EXPECTED[name]
    assert (dev.core.name, dev.clock_mhz, dev.sram_bytes, dev.flash_bytes) == (core, mhz, sram, flash)
    assert dev.active_power_mw > 0 and dev.source and dev.core.source


@pytest.mark.parametrize("name", DEVICES.names())
def test_every_registered_device_is_usable(name: str) -> None:
    dev = get_device(name)
    assert dev.cycles_to_ms(dev.clock_mhz * 1e3) == pytest.approx(1.0)
    assert dev.energy_mj(1000.0) == pytest.approx(dev.active_power_mw)  # 1 s at P mW = P mJ


def test_unknown_device() -> None:
    with pytest.raises(UnknownNameError, match="stm32f746"):
        get_device("nosuchboard")


CUSTOM = """
[cores.tiny-core]
conv = 3.0
pointwise = 2.5
depthwise = 6.0
dense = 3.0
pool = 2.0
elementwise = 4.0
memory = 0.5
op_overhead = 1000
float32 = 4.0
source = "made up for a test"

[devices.test-board-a]
core = "tiny-core"
clock_mhz = 48
sram = "96KB"
flash = "512KB"
active_power_mw = 12.5
description = "a custom board"

[devices.test-board-b]
core = "cortex-m4"
clock_mhz = 80
sram = 65536
flash = "1MB"
active_power_mw = 20
"""


def test_custom_device_file(tmp_path: Path) -> None:
    path = tmp_path / "boards.toml"
    path.write_text(CUSTOM)
    devs = load_devices(path)
    assert [d.name for d in devs] == ["test-board-a", "test-board-b"]
    a = get_device("test-board-a")
    assert a.core.name == "tiny-core" and a.core.conv == 3.0 and a.sram_bytes == 96 * KB
    assert get_device("test-board-b").core == get_device("stm32f412").core
    assert load_devices(path) == devs  # loading the same file again is harmless
    other = tmp_path / "clash.toml"
    other.write_text(CUSTOM.replace("clock_mhz = 48", "clock_mhz = 50"))
    with pytest.raises(ConfigError, match="already defined"):
        load_devices(other)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("clock_mhz = 48", "clock_mhz = -1"), "positive"),
        (("sram = \"96KB\"", "sram = \"96QB\""), "unit"),
        (("core = \"tiny-core\"", "core = \"z80\""), "unknown core"),
        (("active_power_mw = 12.5", "active_power_mw = 12.5\nvoltage = 3"), "unknown key"),
        (("conv = 3.0\n", ""), "missing 'conv'"),
        (("[devices.test-board-a]", "[devices.test-board-a"), "TOML"),
    ],
)
def test_bad_device_file(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_devices(CUSTOM.replace(*edit))


def test_missing_device_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_devices(tmp_path / "nope.toml")


# --- limits -------------------------------------------------------------------------------------------------

def test_limits_from_device() -> None:
    lim = Limits.from_options(device="stm32f746")
    assert lim.sram_bytes == 320 * KB and lim.flash_bytes == 1 * MB and lim.latency_ms is None
    assert lim.bounds() == {"peak_sram_bytes": 320 * KB, "flash_bytes": 1 * MB}


def test_limits_explicit_wins() -> None:
    lim = Limits.from_options(device="stm32f746", sram="64KB", latency_ms=50, macs=1e6)
    assert lim.sram_bytes == 64 * KB  # explicit
    assert lim.flash_bytes == 1 * MB  # from the device
    cons = {c.metric: c for c in lim.constraints()}
    assert set(cons) == {"peak_sram_bytes", "flash_bytes", "latency_ms", "macs"}
    assert cons["peak_sram_bytes"].upper == 64 * KB and cons["peak_sram_bytes"].hard
    assert all(not c.hard for c in lim.constraints(hard=False))
    only = Limits.from_options(flash="256KB", params=1000, energy_mj=2.0)
    assert only.device is None and only.sram_bytes is None and only.flash_bytes == 256 * KB
    assert {c.metric for c in only.constraints()} == {"flash_bytes", "params", "energy_mj"}


def test_limits_weights_bound_weight_bytes() -> None:
    lim = Limits.from_options(device="stm32f412", weights="4.5KB")
    assert lim.weight_bytes == 4608
    assert lim.bounds() == {"peak_sram_bytes": 256 * KB, "flash_bytes": 1 * MB, "weight_bytes": 4608}
    assert Limits.from_options(device="stm32f412").weight_bytes is None  # a device has no weights limit
    only = Limits.from_options(weights=1000)
    assert only.check({"weight_bytes": 1000.0}) == {"weight_bytes": True}
    assert only.check({"weight_bytes": 1001.0}) == {"weight_bytes": False}
    assert describe_bound("weight_bytes", 4608) == "weight_bytes <= 4.5 KB"
    with pytest.raises(ConfigError):
        Limits.from_options(weights="4.5 parsecs")


def test_limits_check() -> None:
    lim = Limits.from_options(sram="1KB", latency_ms=10)
    ok = {"peak_sram_bytes": 1024.0, "latency_ms": 9.0}
    assert lim.check(ok) == {"peak_sram_bytes": True, "latency_ms": True} and lim.satisfied(ok)
    bad = {"peak_sram_bytes": 1025.0}
    assert lim.check(bad) == {"peak_sram_bytes": False, "latency_ms": False}  # a missing metric fails
    assert lim.needs_device and not Limits.from_options(device="rp2040", latency_ms=5).needs_device


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ConfigError):
        Limits.from_options(latency_ms=-1)
    with pytest.raises(ConfigError):
        Limits.from_options(sram="lots")
