"""Deploying a trial of a stored run: find its architecture, its retrained weights and its data set.

Reading a run belongs to :mod:`tinyevo.run`; this module sits above :mod:`tinyevo.deploy` (which knows nothing of
runs) and hands the trial to :func:`tinyevo.deploy.export.export_model`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tinyevo.deploy.export import DEFAULT_OPTIONS, DeployReport, ExportOptions, Format, export_model
from tinyevo.errors import DeployError
from tinyevo.ir import ArchIR
from tinyevo.run.assembly import cached_dataset, make_space
from tinyevo.run.retraining import load_weights
from tinyevo.run.view import open_run
from tinyevo.trial import Status, Trial

__all__ = ["export_trial", "export_trial_native", "find_trial", "load_trial"]


def find_trial(run_dir: str | Path, *, trial: int | None = None) -> tuple[Any, Trial, Path]:
    """(run view, trial, weights file) of ``trial`` (default: the run's model, the retrained model with the best
    final value of the run's objective, :meth:`tinyevo.run.view.RunView.run_model`) of a run. ``trial`` may also be the number of a derived model
    (``tinyevo deepen``), returned as an ok trial (:meth:`tinyevo.storage.DerivedModel.as_trial`).

    Raises :class:`DeployError` for a trial that does not exist, failed, is infeasible, or has no retrained
    weights.
    """
    view = open_run(run_dir)
    by_number = {**{d.number: d.as_trial() for d in view.derived}, **{t.number: t for t in view.trials}}
    finals = {f.trial: f for f in view.finals}
    if trial is None:
        if not finals:
            hint = (f"retrain its best candidates with `tinyevo retrain {view.run_dir}`" if view.phase == "done"
                    else f"finish the run with `tinyevo resume {view.run_dir}`")
            raise DeployError(
                f"run {view.run_dir} has no retrained model to export (final retraining was disabled or has not "
                f"finished); {hint}, or pass --trial of a retrained model"
            )
        number = view.run_model().trial  # type: ignore[union-attr]
    else:
        number = trial
    t = by_number.get(number)
    if t is None:
        known = f"0..{max(t.number for t in view.trials)}" if view.trials else "none"
        if view.derived:
            known += f"; derived models: {', '.join(str(d.number) for d in view.derived)}"
        raise DeployError(f"run {view.run_dir} has no trial {number} (trials: {known})")
    if t.status is Status.FAILED:
        raise DeployError(f"trial {number} failed during the search ({t.error or 'no error message'}); "
                          "only successfully evaluated trials can be exported")
    if t.status is Status.INFEASIBLE:
        raise DeployError(f"trial {number} is infeasible: it violates the run's hard limits (total violation "
                          f"{t.violation:.1%}) and was never trained; pick a feasible trial")
    final = finals.get(number)
    if final is None:
        done = ", ".join(str(n) for n in sorted(finals)) or "none"
        raise DeployError(f"trial {number} has no trained weights; only retrained models can be exported "
                          f"(retrained trials: {done})")
    weights = view.run_dir / final.weights
    if not weights.is_file():
        raise DeployError(f"the weights of trial {number} are missing: {weights}")
    return view, t, weights


def load_trial(run_dir: str | Path, *, trial: int | None = None) -> tuple[Any, Trial, ArchIR, dict[str, Any], Any]:
    """(run view, trial, architecture, retrained ``state_dict``, data set) of a retrained trial of a run (default:
    the run's model); errors as :func:`find_trial`."""
    view, t, weights = find_trial(run_dir, trial=trial)
    cfg = view.config
    data = cached_dataset(cfg.data.spec, cfg.seed, cfg.data.val_fraction, cfg.data.val_min_per_class)
    space = make_space(cfg.space, input_shape=data.input_shape, num_classes=data.num_classes)
    ir = space.decode(space.parse(t.genome))
    return view, t, ir, load_weights(weights), data


def export_trial(
    run_dir: str | Path,
    *,
    trial: int | None = None,
    fmt: Format = "tflite",
    out_dir: str | Path | None = None,
    options: ExportOptions = DEFAULT_OPTIONS,
) -> DeployReport:
    """Export a retrained trial of a run (default out dir: ``RUN/export/trial-NNNN-FORMAT``); ``fmt`` may also
    be ``c-native`` (:func:`export_trial_native`)."""
    if fmt == "c-native":
        return export_trial_native(run_dir, trial=trial, out_dir=out_dir, options=options)[0]
    view, t, ir, state, data = load_trial(run_dir, trial=trial)
    out = Path(out_dir) if out_dir is not None else view.run_dir / "export" / f"trial-{t.number:04d}-{fmt}"
    if out_dir is None:  # inside the run directory, which may come from someone else: no planted links
        from tinyevo.fsutil import refuse_links

        refuse_links(view.run_dir / "export", out)
    device = options.device if options.device is not None else view.config.limits.device
    return export_model(ir, state, data, fmt=fmt, out_dir=out, options=replace(options, device=device))


def export_trial_native(run_dir: str | Path, *, trial: int | None = None, out_dir: str | Path | None = None,
                        options: ExportOptions = DEFAULT_OPTIONS) -> tuple[DeployReport, Any]:
    """``export --format c-native``: the int8 ``.tflite`` export plus the native C model generated from it and
    its bit-exact check against TFLite-Micro (:func:`tinyevo.codegen.export.export_native`); returns the deploy
    report and the :class:`~tinyevo.codegen.export.NativeReport`."""
    from tinyevo.codegen.export import export_native

    view, t, ir, state, data = load_trial(run_dir, trial=trial)
    out = Path(out_dir) if out_dir is not None else view.run_dir / "export" / f"trial-{t.number:04d}-c-native"
    if out_dir is None:
        from tinyevo.fsutil import refuse_links

        refuse_links(view.run_dir / "export", out)
    device = options.device if options.device is not None else view.config.limits.device
    return export_native(ir, state, data, out_dir=out, options=replace(options, device=device))
