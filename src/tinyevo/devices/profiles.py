"""Device profiles (core, clock, SRAM, flash, active power) and per-core latency coefficients.

Profiles live in TOML files: the built-in ones in ``builtin.toml`` beside this module, users' own in any file
passed to :func:`load_devices`. A file has two optional tables::

    [cores.my-core]                # per-core latency coefficients (see CoreModel); every one needs a source
    conv = 1.6                     # cycles per MAC, kxk convolution
    ...
    source = "where the numbers come from"

    [devices.my-board]
    core = "cortex-m4"             # a core defined in this file or a built-in one
    clock_mhz = 80
    sram = "128KB"                 # sizes: B / KB / MB, KB = 1024 bytes
    flash = "512KB"
    active_power_mw = 25.0
    description = "..."
    source = "datasheet ..."

Loaded profiles are registered in :data:`DEVICES` (and cores in :data:`CORES`), so every CLI command can name
them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tinyevo.devices.sizes import parse_size
from tinyevo.errors import ConfigError
from tinyevo.registry import Registry


@dataclass(frozen=True)
class CoreModel:
    """Latency coefficients of one CPU core running int8 inference kernels (e.g. CMSIS-NN under TFLite Micro).

    An op's cycles are ``coefficient[op class] x work + memory x bytes moved + op_overhead`` where ``work`` is
    MACs for ``conv`` / ``pointwise`` / ``depthwise`` / ``dense``, window elements for ``pool`` and output
    elements for ``elementwise`` ops (add, relu, concat, zero); ``bytes moved`` counts activations read and
    written plus weights read. In float32 mode the compute term is multiplied by ``float32``. These are
    estimates, to be calibrated by measurement; ``source`` says where they come from.
    """

    name: str
    conv: float  # cycles per MAC, kxk (k > 1) or grouped convolution
    pointwise: float  # cycles per MAC, 1x1 convolution
    depthwise: float  # cycles per MAC, depthwise convolution
    dense: float  # cycles per MAC, fully connected
    pool: float  # cycles per window element, average / max pooling
    elementwise: float  # cycles per output element: add, standalone activation, concat, zero
    memory: float  # cycles per byte of activations read + written and weights read
    op_overhead: float  # cycles per kernel invocation (interpreter dispatch, setup)
    float32: float  # multiplier of the compute term for float32 kernels
    description: str = ""
    source: str = ""

    def coefficient(self, op_class: str) -> float:
        return float(getattr(self, op_class))


COEFFICIENTS: tuple[str, ...] = (
    "conv", "pointwise", "depthwise", "dense", "pool", "elementwise", "memory", "op_overhead", "float32",
)


@dataclass(frozen=True)
class DeviceProfile:
    """A microcontroller: its core's latency model, clock, memories and active power."""

    name: str
    core: CoreModel
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    active_power_mw: float  # whole-chip power while running inference (energy = latency x this)
    description: str = ""
    source: str = ""

    def cycles_to_ms(self, cycles: float) -> float:
        return cycles / (self.clock_mhz * 1e3)

    def energy_mj(self, latency_ms: float) -> float:
        """Energy of running for ``latency_ms`` at active power (ms x mW = uJ; / 1000 = mJ)."""
        return latency_ms * self.active_power_mw / 1e3


CORES: Registry[CoreModel] = Registry("core")
DEVICES: Registry[DeviceProfile] = Registry("device")
"""Device profiles by name: ``DEVICES.create(name)`` / :func:`get_device` returns a :class:`DeviceProfile`."""


def get_device(name: str | DeviceProfile) -> DeviceProfile:
    """The registered profile ``name`` (a :class:`DeviceProfile` is returned as is)."""
    if isinstance(name, DeviceProfile):
        return name
    return DEVICES.create(name)


def get_core(name: str) -> CoreModel:
    return CORES.create(name)


def _register(registry: Registry, name: str, value: object, origin: str) -> None:
    if name in registry:
        if registry.create(name) == value:
            return  # loading the same definition twice is harmless
        raise ConfigError(f"{origin}: {registry.kind} {name!r} is already defined differently; rename it")
    registry.register(name, help=getattr(value, "description", ""))(lambda: value)


def _number(table: Mapping[str, object], key: str, where: str, *, positive: bool = True) -> float:
    if key not in table:
        raise ConfigError(f"{where}: missing {key!r}")
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where}: {key!r} must be a number, got {v!r}")
    if v < 0 or (positive and v == 0):
        raise ConfigError(f"{where}: {key!r} must be {'positive' if positive else 'non-negative'}, got {v!r}")
    return float(v)


def _text(table: Mapping[str, object], key: str, where: str) -> str:
    v = table.get(key, "")
    if not isinstance(v, str):
        raise ConfigError(f"{where}: {key!r} must be a string, got {v!r}")
    return v


def _check_keys(table: Mapping[str, object], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _core_from_table(name: str, table: Mapping[str, object], where: str) -> CoreModel:
    _check_keys(table, set(COEFFICIENTS) | {"description", "source"}, where)
    nonneg = {"memory", "op_overhead"}
    values = {k: _number(table, k, where, positive=k not in nonneg) for k in COEFFICIENTS}
    return CoreModel(name=name, description=_text(table, "description", where),
                     source=_text(table, "source", where), **values)


def _device_from_table(
    name: str, table: Mapping[str, object], cores: Mapping[str, CoreModel], where: str
) -> DeviceProfile:
    allowed = {"core", "clock_mhz", "sram", "flash", "active_power_mw", "description", "source"}
    _check_keys(table, allowed, where)
    core_name = table.get("core")
    if not isinstance(core_name, str):
        raise ConfigError(f"{where}: 'core' must name a core, got {core_name!r}")
    if core_name in cores:
        core = cores[core_name]
    elif core_name in CORES:
        core = CORES.create(core_name)
    else:
        known = ", ".join(sorted(set(cores) | set(CORES.names())))
        raise ConfigError(f"{where}: unknown core {core_name!r}; known: {known}")
    sizes = {}
    for key in ("sram", "flash"):
        if key not in table:
            raise ConfigError(f"{where}: missing {key!r}")
        try:
            sizes[key] = parse_size(table[key])  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        if sizes[key] <= 0:
            raise ConfigError(f"{where}: {key!r} must be positive")
    return DeviceProfile(
        name=name, core=core, clock_mhz=_number(table, "clock_mhz", where),
        sram_bytes=sizes["sram"], flash_bytes=sizes["flash"],
        active_power_mw=_number(table, "active_power_mw", where),
        description=_text(table, "description", where), source=_text(table, "source", where),
    )


def parse_devices(
    text: str, *, origin: str = "<string>"
) -> tuple[tuple[CoreModel, ...], tuple[DeviceProfile, ...]]:
    """Cores and devices defined in TOML ``text`` (nothing is registered)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    _check_keys(doc, {"cores", "devices"}, origin)
    cores: dict[str, CoreModel] = {}
    for name, table in doc.get("cores", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [cores.{name}] must be a table")
        cores[name] = _core_from_table(name, table, f"{origin} [cores.{name}]")
    devices = []
    for name, table in doc.get("devices", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [devices.{name}] must be a table")
        devices.append(_device_from_table(name, table, cores, f"{origin} [devices.{name}]"))
    return tuple(cores.values()), tuple(devices)


def load_devices(path: str | Path, *, register: bool = True) -> tuple[DeviceProfile, ...]:
    """Read device profiles (and cores) from a TOML file; with ``register`` they join :data:`DEVICES`.

    Re-loading an identical definition is a no-op; a different definition under a taken name is a
    :class:`~tinyevo.errors.ConfigError`.
    """
    p = Path(path)
    text = read_device_file(p)
    if register:
        return register_device_text(text, origin=str(p))
    return parse_devices(text, origin=str(p))[1]


def read_device_file(path: str | Path) -> str:
    """The text of a device file, or a one-line :class:`~tinyevo.errors.ConfigError`."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"device file {p} is not UTF-8 text; TOML files are UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read device file {p}: {exc.strerror or exc}") from None


def register_device_text(text: str, *, origin: str = "<string>") -> tuple[DeviceProfile, ...]:
    """Register the cores and devices defined in TOML ``text`` (as :func:`load_devices` does for a file; a run
    stores its device files' text, so that it resumes without them); returns the devices."""
    cores, devices = parse_devices(text, origin=origin)
    for core in cores:
        _register(CORES, core.name, core, origin)
    for dev in devices:
        _register(DEVICES, dev.name, dev, origin)
    return devices


def _load_builtin() -> None:
    text = resources.files("tinyevo.devices").joinpath("builtin.toml").read_text(encoding="utf-8")
    register_device_text(text, origin="builtin.toml")


_load_builtin()

__all__ = [
    "COEFFICIENTS", "CORES", "DEVICES", "CoreModel", "DeviceProfile", "get_core", "get_device",
    "load_devices",
    "read_device_file",
    "register_device_text",
    "parse_devices",
]
