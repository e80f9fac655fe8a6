"""``tinyevo deepen RUN --insert POS:LAYER``: a deeper copy of a retrained model that computes what it did.

Adds a new residual layer (starting as the identity) to a retrained ``chain`` model and stores the result as a
derived model of the run (not a search trial: ``tinyevo resume`` is unaffected), with the trained weights carried
over. Its number (at least the run's ``max_trials``, so never a search trial's) works as ``--trial`` of
``retrain``/``export``/``deepen``; ``tinyevo retrain RUN --trial NEW --continue`` then trains the extra capacity.
See :mod:`tinyevo.run.deepen`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def run_deepen_command(args: argparse.Namespace) -> int:
    from tinyevo.run.deepen import deepen_trial, parse_insert

    position, layer = parse_insert(args.insert)
    r = deepen_trial(Path(args.run), trial=args.trial, position=position, layer=layer, seed=args.seed)
    out = Console(soft_wrap=True)  # no line breaks inside paths and commands
    c = r.cost
    out.print(f"derived model {r.number}: {r.genome}")
    out.print(f"  deepened from trial {r.parent}; outputs differ by at most {r.max_logit_diff:.2g} "
              f"(val_acc {100 * r.val_acc:.2f}%, test_acc {100 * r.test_acc:.2f}%)")
    out.print(f"  params {c.get('params', 0):,.0f}  MACs {c.get('macs', 0):,.0f}  flash {c.get('flash_bytes', 0):,.0f} B"
              f"  peak SRAM {c.get('peak_sram_bytes', 0):,.0f} B")
    out.print(f"  weights: {r.weights}")
    out.print(f"next: tinyevo retrain {args.run} --trial {r.number} --continue --keep-best")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "deepen",
        help="add an identity-initialised residual layer to a retrained model (a derived model)",
        description="Insert a residual conv/dsc layer (stride 1, the width of its input) into a retrained chain "
                    "model, starting as the identity so the deeper model computes what the trained one did; it "
                    "is stored as a derived model of the run (not a search trial; its number is at least the "
                    "run's max_trials) whose retrained model is the morphed weights. Train it further with "
                    "`tinyevo retrain RUN --trial NEW --continue`.",
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--trial", type=int, metavar="N",
                   help="the retrained trial or derived model to deepen (default: the run's model)")
    p.add_argument("--insert", required=True, metavar="POS:LAYER",
                   help="insert LAYER (a chain layer token, e.g. dsc_k5_s1_c64_r) before feature layer POS")
    p.add_argument("--seed", type=int, default=0, help="seed of the new layer's initial weights")
    p.set_defaults(func=run_deepen_command)
