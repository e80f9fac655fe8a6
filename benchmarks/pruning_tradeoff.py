"""Size / accuracy trade-off of structured L1 channel pruning, with and without fine-tuning.

Trains fixed ``chain`` networks (MNIST from ``../shared/data/mnist.npz`` when present, else the built-in digits;
``--data``), prunes each to 0 / 25 / 50 / 75 % of its prunable channels (:func:`tinyevo.deploy.prune_channels`:
BN-folded L1 norm, per channel space), re-estimates its BatchNorm statistics on training data
(:func:`tinyevo.estimators.recalibrate_batchnorm`, no weight change) and fine-tunes it for ``--finetune-epochs``
epochs (Adam, lr 1e-3), as :func:`tinyevo.deploy.prune_and_finetune` does. Rows: pruned only, pruned + BN
re-estimated, pruned + dense-bias compensation (:func:`tinyevo.deploy.prune.compensate_dense_bias`) + BN re-estimated,
pruned + BN re-estimated + fine-tuned. Per (network, ratio, fine-tuned or not) it reports the cost
model's params, MACs, int8 flash and peak SRAM, the float test accuracy, and, with the ``tinyevo[deploy]`` extra
(``--no-tflm`` skips it), the int8 ``.tflite`` size, TFLite-Micro's arena and the int8 accuracy measured on TFLM
(PTQ only, no QAT, on ``--test-samples`` test rows).

Prints a table and writes ``benchmarks/out/pruning_tradeoff.json``.

    python benchmarks/pruning_tradeoff.py                    # MNIST, 2 networks, ~10 min on one core
    python benchmarks/pruning_tradeoff.py --data digits --epochs 10
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tinyevo.cost import estimate_cost
from tinyevo.data import Dataset, load_dataset, subset
from tinyevo.deploy.model import load_weights, predict
from tinyevo.deploy.prune import compensate_dense_bias, prune_channels
from tinyevo.training import TrainConfig, fraction_correct, recalibrate_batchnorm, train_model
from tinyevo.spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = (
    "conv_k3_s2_c16_r-dsc_k3_s1_c32_r-dsc_k3_s2_c64_r-gap",  # global-pool head
    "conv_k3_s1_c8_r-maxpool_k2_s2-conv_k3_s1_c16_r-maxpool_k2_s2-flat-dense_c32",  # flatten + dense head
)
RATIOS = (0.0, 0.25, 0.5, 0.75)


def default_data() -> str:
    shared = Path(os.environ.get("TINYEVO_SHARED", ROOT / ".." / "shared")).resolve()
    mnist = shared / "data" / "mnist.npz"
    return str(mnist) if mnist.exists() else "digits"


def deploy_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torchao", "litert_torch", "tflite_micro"))


def measure_int8(ir: Any, state: dict[str, torch.Tensor], data: Dataset, *, test_samples: int,
                 seed: int) -> dict[str, Any]:
    """Export int8 (PTQ) and measure on TFLite-Micro."""
    from tinyevo.deploy import ExportOptions, QuantConfig, export_model

    options = ExportOptions(quant=QuantConfig(qat_mode="never"), test_samples=test_samples, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        rep = export_model(ir, state, data, fmt="tflite", out_dir=tmp, options=options)
    return {"tflite_bytes": rep.tflite_bytes, "arena_bytes": rep.arena_bytes,
            "arena_head_bytes": rep.arena_head_bytes, "float_accuracy_tflm_rows": rep.float_accuracy_torch,
            "int8_accuracy_torch": rep.int8_accuracy_torch,
            "int8_accuracy_tflm": rep.int8_accuracy_tflm, "tflm_test_samples": rep.test_samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="data spec (default: shared MNIST, else digits)")
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated chain genomes")
    ap.add_argument("--ratios", default=",".join(str(r) for r in RATIOS))
    ap.add_argument("--epochs", type=int, default=3, help="training epochs of each network")
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--train-fraction", type=float, default=1.0, help="stratified share of the training split")
    ap.add_argument("--test-samples", type=int, default=2000, help="test rows run through TFLM")
    ap.add_argument("--no-tflm", action="store_true", help="skip the int8 export and TFLM measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "pruning_tradeoff.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("jax", "absl", "root"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    console = Console(width=200)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = load_dataset(args.data, seed=args.seed)
    if args.train_fraction < 1.0:
        data = subset(data, args.train_fraction, seed=args.seed)
    tflm = not args.no_tflm and deploy_available()
    if not args.no_tflm and not tflm:
        console.print("[yellow]the tinyevo[deploy] extra is not installed: no int8 / TFLM columns[/yellow]")
    ratios = [float(r) for r in args.ratios.split(",")]
    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes)
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test)
    rows: list[dict[str, Any]] = []
    for genome in args.networks.split(","):
        ir = space.decode(space.parse(genome))
        t0 = time.perf_counter()
        trained = train_model(ir, data, config=TrainConfig(epochs=args.epochs, batch_size=128,
                                                           threads=args.threads), seed=args.seed)
        base_state = {k: v.detach().clone() for k, v in trained.model.state_dict().items()}
        console.print(f"trained {genome} in {time.perf_counter() - t0:.0f} s: test "
                      f"{trained.metrics['test_acc']:.4f}")
        for ratio in ratios:
            pruned = prune_channels(ir, base_state, ratio)
            recal = load_weights(pruned.ir, pruned.state_dict)
            recalibrate_batchnorm(recal, np.asarray(data.x_train), seed=args.seed)
            recal_state = {**pruned.state_dict, **{k: v.detach().clone() for k, v in recal.state_dict().items()}}
            variants: list[tuple[int, bool, bool, dict[str, torch.Tensor]]] = [
                (0, False, False, pruned.state_dict), (0, True, False, recal_state)]
            if ratio > 0:  # dense layers' biases absorb the mean of the features they lost, then BN re-estimated
                base = load_weights(ir, base_state)
                comp = load_weights(pruned.ir, compensate_dense_bias(base, ir, pruned, np.asarray(data.x_train),
                                                                     seed=args.seed))
                recalibrate_batchnorm(comp, np.asarray(data.x_train), seed=args.seed)
                variants.append((0, True, True, {k: v.detach().clone() for k, v in comp.state_dict().items()}))
            if args.finetune_epochs > 0:
                ft = TrainConfig(epochs=args.finetune_epochs, batch_size=64, optimizer="adam", lr=1e-3,
                                 weight_decay=0.0, threads=args.threads)
                tuned = train_model(pruned.ir, data, config=ft, seed=args.seed, init_state=recal_state)
                variants.append((args.finetune_epochs, True, False,
                                 {k: v.detach().clone() for k, v in tuned.model.state_dict().items()}))
            cost = estimate_cost(pruned.ir)
            cost_tflm = estimate_cost(pruned.ir, planner="tflm")
            for ft_epochs, bn, bias, state in variants:
                t1 = time.perf_counter()
                model = load_weights(pruned.ir, state)
                row: dict[str, Any] = {
                    "network": genome, "ratio": ratio, "removed_fraction": pruned.removed_fraction,
                    "finetune_epochs": ft_epochs, "bn_recalibrated": bn, "bias_compensated": bias, "params": cost.params, "macs": cost.macs,
                    "est_flash_bytes": cost.flash_bytes, "est_peak_sram_bytes": cost.peak_sram_bytes,
                    "est_peak_sram_tflm_bytes": cost_tflm.peak_sram_bytes,
                    "float_test_acc": fraction_correct(predict(model, x_test), y_test), "test_samples": len(y_test),
                }
                if tflm:
                    row.update(measure_int8(pruned.ir, state, data, test_samples=args.test_samples,
                                            seed=args.seed))
                row["seconds"] = time.perf_counter() - t1
                rows.append(row)
                console.print(f"  ratio {ratio:.2f} BN {'re-estimated' if bn else 'as trained'}"
                              f"{' + bias compensation' if bias else ''} ft {ft_epochs}: params {cost.params}, float "
                              f"{row['float_test_acc']:.4f}, int8 TFLM {row.get('int8_accuracy_tflm')}")
    table = Table(title=f"structured L1 channel pruning on {Path(args.data).name} (int8 cost model; TFLM measured)")
    for col in ("net", "pruned", "BN re-est", "bias comp", "ft ep", "params", "MACs", "est flash B", "est SRAM B", "float acc",
                "tflite B", "TFLM arena B", "float acc*", "int8 TFLM acc*"):
        table.add_column(col, justify="right")
    names = {g: chr(ord("A") + i) for i, g in enumerate(dict.fromkeys(r["network"] for r in rows))}
    for r in rows:
        table.add_row(
            names[r["network"]], f"{100 * r['ratio']:.0f} %", "yes" if r["bn_recalibrated"] else "no",
            "yes" if r["bias_compensated"] else "no",
            str(r["finetune_epochs"]), str(r["params"]),
            str(r["macs"]), str(r["est_flash_bytes"]), str(r["est_peak_sram_bytes"]),
            f"{100 * r['float_test_acc']:.2f}",
            str(r.get("tflite_bytes", "-")), str(r.get("arena_bytes", "-")),
            *(f"{100 * r[k]:.2f}" if r.get(k) is not None else "-"
              for k in ("float_accuracy_tflm_rows", "int8_accuracy_tflm")),
        )
    console.print(table)
    if tflm:
        console.print(f"* on {args.test_samples} random test rows (seeded) run through TFLM; float acc: whole test split")
    for g, n in names.items():
        console.print(f"{n}: {g}")
    total = time.perf_counter() - start
    console.print(f"total {total:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "platform": platform.platform(), "seconds": total,
                               "networks": names, "rows": rows}, indent=1, default=str))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
