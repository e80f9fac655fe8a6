"""Resource limits of a deployment, from a device profile, explicit numbers, or both (explicit wins)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tinyevo.devices.profiles import DeviceProfile, get_device
from tinyevo.devices.sizes import format_size, parse_size
from tinyevo.errors import ConfigError
from tinyevo.problem import Constraint

#: Limit field -> cost metric it bounds (the keys of ``CostReport.as_metrics()``).
METRICS: dict[str, str] = {
    "sram_bytes": "peak_sram_bytes",
    "flash_bytes": "flash_bytes",
    "weight_bytes": "weight_bytes",
    "latency_ms": "latency_ms",
    "energy_mj": "energy_mj",
    "macs": "macs",
    "params": "params",
}


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"limit {name} must be a positive number, got {value!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """Upper bounds on cost metrics (``None``: unlimited) and the device to estimate latency / energy on.

    ``flash_bytes`` bounds the whole ``.tflite`` flatbuffer; ``weight_bytes`` only the weights and biases as
    stored (the "model size" of muNAS; see :attr:`tinyevo.cost.CostReport.weight_bytes`).
    """

    device: DeviceProfile | None = None
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    weight_bytes: int | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    macs: float | None = None
    params: float | None = None

    def __post_init__(self) -> None:
        for name in METRICS:
            _positive(name, getattr(self, name))

    @classmethod
    def from_options(
        cls,
        *,
        device: str | DeviceProfile | None = None,
        sram: str | int | None = None,
        flash: str | int | None = None,
        weights: str | int | None = None,
        latency_ms: float | None = None,
        energy_mj: float | None = None,
        macs: float | None = None,
        params: float | None = None,
    ) -> Limits:
        """Limits from a device (its SRAM and flash) and/or explicit values; an explicit value wins.

        ``sram`` / ``flash`` / ``weights`` are bytes or size strings (``"64KB"``, KB = 1024 bytes); a device
        has no weights limit of its own.
        """
        dev = get_device(device) if device is not None else None
        sram_b = parse_size(sram) if sram is not None else (dev.sram_bytes if dev else None)
        flash_b = parse_size(flash) if flash is not None else (dev.flash_bytes if dev else None)
        weights_b = parse_size(weights) if weights is not None else None
        return cls(device=dev, sram_bytes=sram_b, flash_bytes=flash_b, weight_bytes=weights_b,
                   latency_ms=latency_ms, energy_mj=energy_mj, macs=macs, params=params)

    def bounds(self) -> dict[str, float]:
        """Metric name -> upper bound, for the limits that are set."""
        return {m: float(getattr(self, f)) for f, m in METRICS.items() if getattr(self, f) is not None}

    def constraints(self, *, hard: bool = True) -> tuple[Constraint, ...]:
        """One ``metric <= bound`` constraint per set limit (on the ``CostReport.as_metrics()`` names)."""
        return tuple(Constraint(metric, upper=bound, hard=hard) for metric, bound in self.bounds().items())

    def check(self, metrics: Mapping[str, float]) -> dict[str, bool]:
        """Metric name -> whether ``metrics`` satisfies that limit (a missing metric does not)."""
        return {c.metric: c.violation(metrics) == 0.0 for c in self.constraints()}

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        return all(self.check(metrics).values())

    @property
    def needs_device(self) -> bool:
        """Latency and energy limits can only be checked with a device to estimate them on."""
        return self.device is None and (self.latency_ms is not None or self.energy_mj is not None)

    def is_empty(self) -> bool:
        return not self.bounds()


def describe_bound(metric: str, value: float) -> str:
    """``"peak_sram_bytes <= 64.0 KB"``-style text of one limit."""
    if metric.endswith("_bytes"):
        shown = format_size(value)
    elif metric in ("macs", "params"):
        shown = f"{value:,.0f}"
    elif metric == "latency_ms":
        shown = f"{value:g} ms"
    elif metric == "energy_mj":
        shown = f"{value:g} mJ"
    else:
        shown = f"{value:g}"
    return f"{metric} <= {shown}"
