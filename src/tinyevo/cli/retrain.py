"""``tinyevo retrain RUN``: (re)do a run's final retraining with other settings.

The common use: search on a laptop or a CPU server with ``--no-final`` (or a short final training), then on a GPU
machine ``tinyevo retrain RUN --top-k 8 --final-workers 8 --torch-device cuda --final-epochs 200``, which retrains
the 8 best candidates at once and keeps the one with the best final validation accuracy as the run's model
(``export``'s default). ``--teacher BIG_RUN`` trains them by knowledge distillation from a bigger retrained model (repeated: from
the ensemble of several). The search trials are untouched; ``[final]`` training options not given keep their stored
values.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from rich.console import Console

from tinyevo.errors import ConfigError


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, the values read as TOML (``lr=0.05``, ``augment=["flip"]``, ``optimizer="sgd"``;
    a bare word is taken as a string)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        out[key.strip().replace("-", "_")] = parsed
    return out


def run_retrain_command(args: argparse.Namespace) -> int:
    from tinyevo.run.config import parse_duration, with_final_options
    from tinyevo.run.engine import load_run_config, retrain_run
    from tinyevo.run.retraining import RetrainPlan

    run_dir = Path(args.run)
    train = _parse_set(args.set)
    if args.device is not None:  # --device is the MCU everywhere else; PyTorch's device has its own flag
        raise ConfigError(f"retrain --device {args.device}: the PyTorch device is --torch-device "
                          f"(e.g. --torch-device {args.device}); --device names the MCU in search and estimate")
    for old, new in (("epochs", "final_epochs"), ("workers", "final_workers")):  # one meaning per flag
        if getattr(args, old) is not None:
            raise ConfigError(f"retrain --{old} {getattr(args, old)}: retraining is the final training, so it takes "
                              f"--{new.replace('_', '-')} (as search does); --{old} is the search's "
                              + ("training epochs per candidate" if old == "epochs" else "parallel evaluations"))
    if args.torch_device is not None:
        train["device"] = args.torch_device
    if args.final_epochs is not None:
        train["epochs"] = args.final_epochs
    if args.time_limit is not None:
        train["time_limit_s"] = parse_duration(args.time_limit)
    if args.threads is not None:
        train["threads"] = args.threads
    config = with_final_options(load_run_config(run_dir), train=train, top_k=args.top_k, workers=args.final_workers,
                                pareto=args.pareto, max_models=args.max_models, teacher=args.teacher)
    err = Console(stderr=True)

    def progress(ev: Any) -> None:
        if args.quiet:
            return
        if ev.kind == "final-start":
            err.print(f"{ev.message} ...")
        elif ev.kind == "final-model" and ev.final is not None:
            m = ev.final.metrics
            err.print(f"retrained trial {ev.final.trial}: val_acc {100 * m.get('val_acc', float('nan')):.2f}% "
                      f"test_acc {100 * m.get('test_acc', float('nan')):.2f}% in {m.get('final_train_s', 0):.0f} s")

    plan = RetrainPlan.for_config(config.final.train, start="weights" if args.continue_training else "scratch",
                                  accept="if_better" if args.keep_best else "always")
    retrain_run(run_dir, config=config, keep_done=args.keep_done, trials=args.trial, plan=plan, progress=progress)
    from tinyevo.cli.search import print_summary
    from tinyevo.run.view import open_run

    print_summary(Console(), run_dir)
    view = open_run(run_dir)  # every stored model, as the table's * and export's default
    chosen = view.run_model()
    if chosen is not None and len(view.finals) > 1:
        Console().print(f"run model (best final {view.run_model_objective().metric}): trial {chosen.trial}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "retrain",
        help="redo a run's final retraining (longer, more models, on a GPU)",
        description="Retrain the best models of a finished search with other [final] settings; the model with "
                    "the best final validation accuracy becomes the run's model.",
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--top-k", type=int, metavar="K", help="retrain the K best feasible trials (default: as stored)")
    p.add_argument("--trial", type=int, action="append", metavar="N",
                   help="retrain this trial (repeatable) instead of the [final] choice, e.g. the run's model for longer")
    p.add_argument("--pareto", action=argparse.BooleanOptionalAction, default=None,
                   help="retrain the Pareto front instead (at most --max-models)")
    p.add_argument("--max-models", type=int, metavar="N", help="Pareto-front models to retrain")
    p.add_argument("--final-workers", type=int, metavar="N", help="models retrained at once, one process each")
    p.add_argument("--workers", type=int, help=argparse.SUPPRESS)  # refused with a pointer to --final-workers
    p.add_argument("--torch-device", metavar="DEV", help="PyTorch training device: cpu, cuda, cuda:N or auto")
    p.add_argument("--device", help=argparse.SUPPRESS)  # refused with a pointer to --torch-device
    p.add_argument("--final-epochs", type=int, metavar="N", help="training epochs of each retrained model")
    p.add_argument("--epochs", type=int, help=argparse.SUPPRESS)  # refused with a pointer to --final-epochs
    p.add_argument("--time-limit", metavar="DURATION",
                   help="training time per model, e.g. 10m (the cosine schedule is fitted to it)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per model")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other [final] training option, value in TOML (e.g. --set lr=0.05); repeatable")
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="start from each model's earlier final weights (one more schedule cycle, e.g. "
                        "--continue --final-epochs 40 --set lr=0.01) instead of from scratch")
    p.add_argument("--teacher", metavar="RUN[:N]", action="append",
                   help="distil from a retrained model of another run: its run's model, or trial N "
                        "(weigh it with --set distill_alpha=0.9 --set distill_temperature=4); repeat it to distil "
                        "from the ensemble of several (the mean of their logits)")
    p.add_argument("--keep-best", action="store_true",
                   help="with --continue: keep a model's earlier weights when the new cycle ends with a lower "
                        "validation accuracy (the new cycle's files go to final/trial-NNNN/rejected/)")
    p.add_argument("--keep-done", action="store_true", help="skip trials that already have a retrained model")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    p.set_defaults(func=run_retrain_command)
