"""What ``tinyevo search`` prints when a search starts: the data, what searches, the limits in force (each with
where it came from: a flag, the config file, the device or the digits demo) and the run directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

LIMIT_OPTIONS: dict[str, str] = {  # limit metric -> the run-config key that sets it
    "peak_sram_bytes": "sram",
    "flash_bytes": "flash",
    "weight_bytes": "weights",
    "latency_ms": "latency_ms",
    "energy_mj": "energy_mj",
    "macs": "macs",
    "params": "params",
}


def given_options(args: Any, file_values: Mapping[str, Any]) -> dict[str, str]:
    """Run-config key -> where the user gave it (``--sram``, ``config file``), for the limit options."""
    out: dict[str, str] = {}
    for key in (*LIMIT_OPTIONS.values(), "device"):
        if getattr(args, key, None) is not None:
            out[key] = f"--{key.replace('_', '-')}"
        elif file_values.get(key) is not None:
            out[key] = "config file"
    return out


def limit_sources(config: Any, bounds: Mapping[str, float], given: Mapping[str, str]) -> dict[str, str]:
    """Limit metric -> where its bound came from: the flag / config file that set it, the device's SRAM or flash,
    or the built-in digits demo's limits."""
    from tinyevo.devices import get_device
    from tinyevo.devices.sizes import parse_size
    from tinyevo.run.config import DIGITS_DEMO_LIMITS

    device = get_device(config.limits.device) if config.limits.device else None
    own = {"sram": device.sram_bytes, "flash": device.flash_bytes} if device is not None else {}
    out: dict[str, str] = {}
    for metric, value in bounds.items():
        key = LIMIT_OPTIONS.get(metric, metric)
        if key in given:
            out[metric] = given[key]
        elif key in own and value == own[key]:
            out[metric] = f"device {device.name}"  # type: ignore[union-attr]
        elif key in DIGITS_DEMO_LIMITS and value == parse_size(DIGITS_DEMO_LIMITS[key]):
            out[metric] = "digits demo"
        else:
            out[metric] = "run config"
    return out


def _estimator_note(estimator: Any, epochs: int | None) -> str:
    """What the estimator's name leaves out: a supernet's scoring options, or a training's epochs."""
    if estimator.supernet is not None:
        scoring = dict(estimator.supernet_scoring)
        steps = scoring.pop("finetune_steps", 0)
        parts = [f"inherited weights fine-tuned {steps} steps" if steps else "inherited weights"]
        parts += [f"{k} {v}" for k, v in scoring.items()]
        return f" ({', '.join(parts)})"
    return f" ({epochs} epochs)" if epochs is not None else ""


def start_lines(config: Any, data: Any, bounds: Mapping[str, float], run_dir: Path,
                given: Mapping[str, str]) -> list[str]:
    """A few lines (rich markup) on what the search that starts now does."""
    from tinyevo.devices import describe_bound
    from tinyevo.run.config import DIGITS_DEMO_LIMITS

    c, h, w = data.input_shape
    lines = [
        f"data [bold]{data.name}[/bold]: {c}x{h}x{w} inputs, {data.num_classes} classes, "
        f"{len(data.x_train)} train / {len(data.x_val)} val / {len(data.x_test)} test samples",
    ]
    epochs = config.estimator.options.epochs
    objectives = ", ".join(f"{o.metric}:{o.direction}" for o in config.objectives)
    tuned = ", ".join(f"{k} {v}" for k, v in config.strategy_options.as_dict().items())
    fidelity = ", ".join(f"{k} {v:g}" for k, v in config.estimator.fidelity.given().items())
    lines.append(
        f"space [bold]{config.space.name}[/bold], strategy {config.strategy}" + (f" ({tuned})" if tuned else "")
        + f", estimator {config.estimator.name}" + _estimator_note(config.estimator, epochs)
        + (f" at fidelity {fidelity}" if fidelity else "")
        + f", objective {objectives}, budget {config.budget.trials} evaluations"
    )
    if config.prefilter is not None:
        pf = config.prefilter
        lines.append(f"prefilter: the {pf.size} best of {pf.pool} random networks within the hard limits by "
                     f"{pf.proxy} are evaluated first")
    device = config.limits.device or "none (no latency / energy)"
    sources = limit_sources(config, bounds, given)
    from tinyevo.run.assembly import soft_metrics

    soft = soft_metrics(config.limits)
    limits = "; ".join(f"{describe_bound(m, v)} ({sources[m]}{', soft' if m in soft else ''})"
                       for m, v in bounds.items()) or "none"
    lines.append(f"device {device}; limits in force: {limits}")
    if config.data.spec == "digits" and "digits demo" not in sources.values():
        dropped = [k for k in DIGITS_DEMO_LIMITS if k not in given]
        if dropped:  # e.g. --sram alone: the demo's flash limit no longer applies
            shown = " / ".join(f"{v} {k}" for k, v in DIGITS_DEMO_LIMITS.items())
            where = f"the device's {' and '.join(dropped)}" if config.limits.device else "no limit"
            lines.append(f"[dim]the digits demo limits ({shown}) apply only when none of --device, --sram, "
                         f"--flash is given: {', '.join(dropped)} is now {where}[/dim]")
    lines.append(f"run directory: [bold]{run_dir}[/bold]")
    return lines
