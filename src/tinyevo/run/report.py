"""Run reports: PNG plots (accuracy vs SRAM / flash / latency with the limits drawn, best-so-far curve, learning
curves of the retrained models) and a
self-contained HTML page (images inlined as base64) with the plots and the tables.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global state, no display needed).
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tinyevo.fsutil import atomic_write, atomic_write_text, ensure_dir
from tinyevo.run.view import TABLE_METRICS, RunView, fmt_metric, open_run
from tinyevo.strategies.base import Status, Trial

COST_AXES: tuple[tuple[str, str], ...] = (
    ("peak_sram_bytes", "peak SRAM (bytes)"),
    ("flash_bytes", "flash (bytes)"),
    ("latency_ms", "latency (ms)"),
)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    images: tuple[Path, ...]


def _figure() -> tuple[object, object]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def front_style(axes: list[str], objective: str, metric: str) -> str | None:
    """How a plot of ``objective`` against ``metric`` shows the run's Pareto front over ``axes``: ``"line"`` when
    the front lies in that plane (its axes are exactly the two), ``"markers"`` (its members, circled) when the
    front is over more axes that include ``metric``, None when ``metric`` is not one of its axes."""
    if axes == [objective, metric]:
        return "line"
    return "markers" if metric in axes and objective in axes else None


def _plot_tradeoff(view: RunView, metric: str, label: str, path: Path) -> bool:
    """Objective vs one cost metric. Returns False (and writes nothing) if no trial has the metric."""
    obj = view.objective
    with_metric = [t for t in view.trials if metric in t.metrics and math.isfinite(t.metrics[metric])]
    if not with_metric:
        return False
    fig, ax = _figure()
    ok = [
        t
        for t in with_metric
        if t.status is Status.OK and obj.metric in t.metrics and math.isfinite(t.metrics[obj.metric])
    ]
    bad = [t for t in with_metric if t not in ok]
    if ok:
        ax.scatter(
            [t.metrics[metric] for t in ok],
            [t.metrics[obj.metric] for t in ok],
            s=18,
            alpha=0.7,
            color="tab:blue",
            label=f"evaluated ({len(ok)})",
        )
        axes = [a.metric for a in view.pareto_objectives()]  # the run's Pareto axes, from its problem
        front = sorted(view.pareto(), key=lambda t: t.metrics.get(metric, math.inf))
        front = [t for t in front if metric in t.metrics]
        style = front_style(axes, obj.metric, metric) if front else None
        if style == "line":
            ax.step(
                [t.metrics[metric] for t in front],
                [t.metrics[obj.metric] for t in front],
                where="post",
                color="tab:orange",
                lw=1.5,
                label="Pareto front",
            )
        elif style == "markers":
            ax.scatter(
                [t.metrics[metric] for t in front],
                [t.metrics[obj.metric] for t in front],
                s=40,
                facecolors="none",
                edgecolors="tab:orange",
                label=f"Pareto front ({', '.join(axes)})",
            )
    if bad:
        ymin = min((t.metrics[obj.metric] for t in ok), default=0.0)
        ax.scatter(
            [t.metrics[metric] for t in bad],
            [ymin] * len(bad),
            marker="|",
            s=60,
            color="grey",
            alpha=0.6,
            label=f"infeasible / failed ({len(bad)})",
        )
    finals = [f for f in view.finals if metric in f.metrics and "test_acc" in f.metrics]
    if finals and obj.metric.endswith("acc"):
        ax.scatter(
            [f.metrics[metric] for f in finals],
            [f.metrics["test_acc"] for f in finals],
            marker="*",
            s=160,
            color="tab:green",
            edgecolor="black",
            zorder=5,
            label="retrained (test_acc)",
        )
    bound = view.bounds.get(metric)
    if bound is not None:
        ax.axvline(bound, color="tab:red", ls="--", lw=1.5, label=f"limit {fmt_metric(metric, bound)}")
    xs = [t.metrics[metric] for t in with_metric if t.metrics[metric] > 0] + ([bound] if bound else [])
    if xs and max(xs) / max(min(xs), 1e-12) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(obj.metric)
    ax.set_title(f"{obj.metric} vs {label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)
    return True


def _plot_best_so_far(view: RunView, path: Path) -> bool:
    obj = view.objective
    points = [
        (t.number, t.metrics[obj.metric])
        for t in view.trials
        if t.status is Status.OK and obj.metric in t.metrics and math.isfinite(t.metrics[obj.metric])
    ]
    if not points:
        return False
    fig, ax = _figure()
    ax.scatter(
        [p[0] for p in points],
        [p[1] for p in points],
        s=12,
        alpha=0.5,
        color="tab:blue",
        label="feasible trial",
    )
    curve = view.best_so_far()
    ax.step(
        [c[0] for c in curve],
        [c[1] for c in curve],
        where="post",
        color="tab:orange",
        lw=2,
        label="best so far",
    )
    ax.set_xlabel("trial")
    ax.set_ylabel(obj.metric)
    ax.set_title(f"best {obj.metric} so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    return True


def final_curves(view: RunView) -> list[tuple[int, list[tuple[float, float]], tuple[float, float] | None]]:
    """(trial, [(epoch, val_acc)], restored) of every retrained model with a readable ``history.json``;
    ``restored`` is the (epoch, val_acc) whose weights ``restore_best`` kept (``epoch_restored``), else None."""
    from tinyevo.run.retraining import model_dir

    out = []
    for f in view.finals:
        file = model_dir(view.run_dir, f.trial) / "history.json"
        try:
            history = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        points = [(h["epoch"], h["val_acc"]) for h in history
                  if isinstance(h, dict) and isinstance(h.get("val_acc"), (int, float)) and math.isfinite(h["val_acc"])]
        if points:
            kept = f.metrics.get("epoch_restored")
            restored = next((p for p in points if p[0] == kept), None) if kept is not None else None
            out.append((f.trial, points, restored))
    return out


def _plot_final_curves(view: RunView, path: Path) -> bool:
    """Validation accuracy per epoch of every retrained model (``final/trial-NNNN/history.json``); the run's model
    (best final validation accuracy) drawn thick, the epoch kept by ``restore_best`` marked."""
    curves = final_curves(view)
    if not curves:
        return False
    chosen = view.run_model()
    fig, ax = _figure()
    for trial, points, restored in curves:
        mine = chosen is not None and trial == chosen.trial
        (line,) = ax.plot([p[0] for p in points], [p[1] for p in points], lw=2.2 if mine else 1.0,
                          alpha=1.0 if mine else 0.7, label=f"trial {trial}" + (" (run's model)" if mine else ""))
        if restored is not None:
            ax.plot(*restored, marker="o", ms=7, mfc="none", color=line.get_color(),
                    label=f"trial {trial}: weights kept (epoch {restored[0]:g})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_acc")
    ax.set_title("final retraining: validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    return True


def _save(fig: object, path: Path) -> None:
    """Save a figure without writing through a link planted at ``path`` (a unique temporary file, renamed)."""
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))  # type: ignore[attr-defined]


def write_plots(view: RunView, out_dir: Path) -> tuple[Path, ...]:
    ensure_dir(out_dir, root=view.run_dir)  # no planted links inside the run directory
    written = []
    from tinyevo.cost.memory import sram_caption

    for metric, label in COST_AXES:
        if metric == "peak_sram_bytes":  # name the runtime the number is for, e.g. SRAM (TFLM arena, 32-bit)
            label = f"{sram_caption(view.config.limits.planner)} (bytes)"
        path = out_dir / f"{view.objective.metric}_vs_{metric}.png"
        if _plot_tradeoff(view, metric, label, path):
            written.append(path)
    path = out_dir / "best_so_far.png"
    if _plot_best_so_far(view, path):
        written.append(path)
    path = out_dir / "final_curves.png"
    if _plot_final_curves(view, path):
        written.append(path)
    return tuple(written)


# --- HTML ---

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.g { text-align: left; font-family: monospace; font-size: 0.85em; }
img { max-width: 48%; margin: 0.5%; border: 1px solid #ddd; }
"""


def _table(head: list[str], rows: list[list[str]], left: frozenset[int] | set[int] = frozenset()) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=g' if i in left else ''}>{html.escape(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{h}</tr>{body}</table>"


def _trial_rows(view: RunView, trials: list[Trial]) -> tuple[list[str], list[list[str]]]:
    obj = view.objective.metric
    head = ["#", "status", obj, *TABLE_METRICS, "genome"]
    rows = [
        [
            str(t.number),
            t.status.value,
            fmt_metric(obj, t.metrics.get(obj)),
            *(fmt_metric(m, t.metrics.get(m)) for m in TABLE_METRICS),
            t.genome,
        ]
        for t in trials
    ]
    return head, rows


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(view: RunView, images: tuple[Path, ...], *, top: int = 15) -> str:
    from tinyevo.cost.memory import sram_caption

    cfg = view.config
    counts = view.counts()
    limits = ", ".join(f"{m} &le; {html.escape(fmt_metric(m, v))}" for m, v in view.bounds.items()) or "none"
    summary = _table(
        ["setting", "value"],
        [
            ["run directory", str(view.run_dir)],
            ["created", datetime.fromtimestamp(view.meta.created_at).isoformat(timespec="seconds")],
            ["data", cfg.data.spec],
            ["space", cfg.space.name],
            ["strategy", cfg.strategy],
            ["estimator", cfg.estimator.name],
            ["device", str(cfg.limits.device)],
            ["peak SRAM convention", cfg.limits.sram_convention],
            ["peak SRAM planner", f"{cfg.limits.planner}: {sram_caption(cfg.limits.planner)}"],
            ["seed", str(cfg.seed)],
            ["budget", f"{cfg.budget.trials} evaluations"],
            ["phase", str(view.phase)],
            [
                "trials",
                (f"{len(view.records)} ({counts['ok']} ok, {counts['infeasible']} infeasible, "
                 f"{counts['failed']} failed)"),
            ],
        ],
        left={1},
    )
    imgs = "".join(f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{_b64(p)}">' for p in images)
    best_head, best_rows = _trial_rows(view, [t for t in view.ranked() if t.status is Status.OK][:top])
    par_head, par_rows = _trial_rows(view, view.pareto())
    finals = ""
    if view.finals:
        fm = ("test_acc", "val_acc", *TABLE_METRICS)
        finals = "<h2>Retrained models</h2>" + _table(
            ["trial", *fm, "weights", "genome"],
            [
                [str(f.trial), *(fmt_metric(m, f.metrics.get(m)) for m in fm), f.weights, f.genome]
                for f in view.finals
            ],
            left={len(fm) + 1, len(fm) + 2},
        )
    failed = [t for t in view.trials if t.status is Status.FAILED]
    failed_html = ""
    if failed:
        failed_html = "<h2>Failed trials</h2>" + _table(
            ["#", "error", "genome"],
            [[str(t.number), t.error or "", t.genome] for t in failed[:50]],
            left={1, 2},
        )
    pobj = ", ".join(f"{o.metric} ({o.direction})" for o in view.pareto_objectives())
    deployed = _deployment_html(view.run_dir)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tinyevo run report</title><style>{_CSS}</style></head>
<body>
<h1>tinyevo run report</h1>
{summary}
<p>Limits: {limits}</p>
<h2>Plots</h2>
{imgs}
{finals}
{deployed}
<h2>Best feasible trials</h2>
{_table(best_head, best_rows, left={len(best_head) - 1})}
<h2>Pareto front ({html.escape(pobj)})</h2>
{_table(par_head, par_rows, left={len(par_head) - 1})}
{failed_html}
</body></html>
"""


_DEPLOY_ROWS: tuple[tuple[str, str, str], ...] = (
    # (label, measured key, estimated key) of an export's report.json
    ("flash / .tflite bytes", "tflite_bytes", "estimated_flash_bytes"),
    ("peak SRAM / TFLM arena bytes", "arena_bytes", "estimated_peak_sram_bytes"),
    ("int8 accuracy (TFLM vs PyTorch)", "int8_accuracy_tflm", "int8_accuracy_torch"),
)


def _deployment_html(run_dir: Path) -> str:
    """Estimated vs measured numbers of every export of the run (``RUN/export/*/report.json``), if any."""
    rows: list[list[str]] = []
    for path in sorted(run_dir.glob("export/*/report.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for label, measured, estimated in _DEPLOY_ROWS:
            m, e = doc.get(measured), doc.get(estimated)
            if m is None or e is None:
                continue
            err = f"{100 * (e - m) / m:+.1f} %" if m else "-"
            rows.append([path.parent.name, label, f"{m:,.4g}", f"{e:,.4g}", err])
    if not rows:
        return ""
    return "<h2>Deployment: measured on TFLite-Micro vs estimated</h2>" + _table(
        ["export", "quantity", "measured", "estimated", "estimate error"], rows, left={0, 1}
    )


def write_report(run_dir: str | Path, *, out_dir: str | Path | None = None) -> ReportFiles:
    """Write the plots and ``report.html`` into ``out_dir`` (default: ``RUN/report``)."""
    view = open_run(run_dir)
    out = Path(out_dir) if out_dir is not None else view.run_dir / "report"
    images = write_plots(view, out)
    page = out / "report.html"
    atomic_write_text(page, render_html(view, images))
    return ReportFiles(html=page, images=images)
