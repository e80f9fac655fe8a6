"""Arm against arm over the seeds of ``benchmarks/supernet_search.py`` (one JSON per seed): int8 test accuracy on
TFLite-Micro of the supernet path and of the training-based search at equal CPU, per seed and on average.

Pairs: A (supernet search) vs B (training-based search stopped at A's CPU), and with ``--rerank K`` runs A' (A's best
K re-scored after fine-tuning) vs B' (B stopped at A''s CPU). For each: both accuracies, their difference (supernet
minus training), both CPU totals and B's CPU as a fraction of A's, and the standard error of one accuracy on the test
images (``sqrt(p (1 - p) / n)``); then the mean difference over the seeds, its spread and standard error, and how
many seeds the supernet path won. Reads only the JSONs::

    python benchmarks/supernet_search_seeds.py benchmarks/results/supernet_search.json \\
        benchmarks/results/supernet_search_seed1.json benchmarks/results/supernet_search_seed2.json \\
        --out benchmarks/results/supernet_search_seeds.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

PAIRS = (("supernet", "training"), ("supernet_rerank", "training_at_supernet_rerank"))


def acc(rec: dict[str, Any]) -> float | None:
    return (rec.get("int8") or {}).get("int8_test_acc")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="supernet_search.py JSONs, one per seed")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    out: dict[str, Any] = {"command": "python benchmarks/supernet_search_seeds.py " + " ".join(map(str, args.runs))
                           + f" --out {args.out}", "pairs": {}}
    for a_prefix, b_prefix in PAIRS:
        rows = []
        for path in args.runs:
            doc = json.loads(path.read_text())
            arms, seed = doc.get("arms", {}), doc["settings"]["seed"]
            # "supernet", or the (first) re-ranked arm "supernet_rerank<K>_steps<S>"
            a_key = next((k for k in arms if k == a_prefix or (a_prefix != "supernet" and k.startswith(a_prefix))),
                         None)
            if a_key is None:
                continue
            b_key = "training" if a_prefix == "supernet" else f"training_at_{a_key}"
            if b_key not in arms or acc(arms[a_key]) is None or acc(arms[b_key]) is None:
                continue
            ra, rb = arms[a_key], arms[b_key]
            n = doc["data"]["test"]
            pa, pb = acc(ra), acc(rb)
            rows.append({"seed": seed, "json": str(path), "arms": [a_key, b_key], "test_images": n,
                         "supernet_int8_acc": pa, "training_int8_acc": pb, "difference": round(pa - pb, 4),
                         "se_one_accuracy": round(math.sqrt(pa * (1 - pa) / n), 4),
                         "supernet_cpu_s": ra["cpu_s_total"], "training_cpu_s": rb["cpu_s_total"],
                         "training_cpu_fraction_of_supernet": rb.get("cpu_ratio_to_A"),
                         "training_stop_rule": rb.get("stop_rule", "consistent stop point"
                                                      if rb.get("stop_point_consistent") else None),
                         "supernet_winner": ra.get("best_genome"), "training_winner": rb.get("best_genome"),
                         "supernet_candidates": ra.get("scored"), "training_candidates": rb.get("scored")})
        if rows:
            diffs = [r["difference"] for r in rows]
            mean = sum(diffs) / len(diffs)
            sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) if len(diffs) > 1 else None
            out["pairs"][f"{a_prefix} vs {b_prefix}"] = {
                "seeds": rows, "mean_difference": round(mean, 4),
                # the seeds' spread of the difference and the standard error of its mean (t = mean / se)
                "sd_difference": None if sd is None else round(sd, 4),
                "se_mean_difference": None if sd is None else round(sd / math.sqrt(len(diffs)), 4),
                "supernet_wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs),
                "training_wins": sum(d < 0 for d in diffs),
                "mean_supernet_acc": round(sum(r["supernet_int8_acc"] for r in rows) / len(rows), 4),
                "mean_training_acc": round(sum(r["training_int8_acc"] for r in rows) / len(rows), 4)}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for name, pair in out["pairs"].items():
        print(f"{name}: " + "; ".join(f"seed {r['seed']}: {r['supernet_int8_acc']:.4f} vs {r['training_int8_acc']:.4f}"
                                       f" at {r['supernet_cpu_s']} / {r['training_cpu_s']} CPU-s"
                                       for r in pair["seeds"])
              + f"; mean difference {pair['mean_difference']:+.4f}, supernet won {pair['supernet_wins']} of "
              f"{len(pair['seeds'])}")


if __name__ == "__main__":
    main()
