"""Regenerate the packaged tabular-benchmark tables (``src/tinyevo/tabular/data/*.gz``) from ``../shared``.

Usage (from the repository root)::

    python benchmarks/make_tabular_data.py                 # reads ../shared/benchmarks
    python benchmarks/make_tabular_data.py --shared /path/to/shared --check

The files are gzip-compressed byte copies of the shared tables, written with ``mtime=0`` and no file name in
the gzip header, so the same input always gives the same bytes (``--check`` verifies the packaged files instead
of writing them and exits 1 when one differs). Sources and licences: ``src/tinyevo/tabular/data/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tinyevo" / "tabular" / "data"
TABLES = ("nb201_cifar10.csv", "nas-bench-macro_cifar10.json")


def compress(data: bytes) -> bytes:
    """Deterministic gzip: level 9, mtime 0, no file name."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT / ".." / "shared", help="the shared folder (default ../shared)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where the .gz files go (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = ap.parse_args(argv)
    stale = 0
    for name in TABLES:
        src = args.shared / "benchmarks" / name
        if not src.is_file():
            print(f"missing {src}", file=sys.stderr)
            return 2
        blob = compress(src.read_bytes())
        dst = args.out / f"{name}.gz"
        if args.check:
            same = dst.is_file() and dst.read_bytes() == blob
            stale += not same
            print(f"{dst}: {'up to date' if same else 'DIFFERS'}")
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(blob)
            print(f"wrote {dst} ({len(blob):,} bytes from {src.stat().st_size:,})")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
