"""The tabular benchmarks shipped with the package (``tinyevo/tabular/data/*.gz``): no ../shared needed."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest

from tinyevo.cli.main import main
from tinyevo.errors import DataError
from tinyevo.spaces import create_space
from tinyevo.tabular import get_benchmark, load_table, packaged_table

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared" / "benchmarks"


def test_packaged_nb201_table() -> None:
    t = get_benchmark("nb201").load()
    assert len(t) == 15625 and t.name == "nb201_cifar10"
    arch, best = t.best("valid_acc")
    assert best == pytest.approx(91.6067) and t.value(arch, "index") == 6111
    space = create_space("nb201")
    assert all(str(space.parse(k)) == k for k in t.keys[:500])  # table keys are canonical genome strings
    assert {"test_acc", "train_time_s", "latency_ms_raspi4"} <= set(t.metrics)


def test_packaged_macro_table() -> None:
    t = get_benchmark("macro").load()
    assert len(t) == 6561 and {"mean_acc", "params", "flops"} <= set(t.metrics)
    space = create_space("macro")
    assert all(str(space.parse(k)) == k for k in t.keys[:500])
    # an independent read of the packaged JSON agrees with the loaded table
    with gzip.open(str(packaged_table("nas-bench-macro_cifar10.json")), "rt") as fh:
        raw = json.load(fh)
    key = sorted(raw)[1234]
    assert t.value(key, "mean_acc") == raw[key]["mean_acc"] and t.value(key, "params") == raw[key]["params"]


def test_gz_tables_load_like_plain_ones(tmp_path: Path) -> None:
    csv_text = "arch,acc,label\na,1.5,x\nb,,y\n"
    (tmp_path / "t.csv").write_text(csv_text)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(csv_text.encode()))
    plain, packed = load_table(tmp_path / "t.csv"), load_table(tmp_path / "t.csv.gz")
    assert packed.name == plain.name == "t" and packed.keys == ("a", "b") and packed.metrics == ("acc",)
    assert packed.value("a", "acc") == 1.5 and math.isnan(packed.value("b", "acc"))
    doc = {"01": {"mean_acc": 90.0, "test_acc": [1, 2]}, "10": {"mean_acc": 91.0}}
    (tmp_path / "m.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    m = load_table(tmp_path / "m.json.gz")
    assert m.name == "m" and m.metrics == ("mean_acc",) and m.best("mean_acc") == ("10", 91.0)
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read"):
        load_table(tmp_path / "bad.csv.gz")


def test_bench_runs_on_the_packaged_table_without_table_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "macro", "--strategy", "random", "--budget", "3", "--seeds", "1"]) == 0
    assert "mean_acc" in capsys.readouterr().out


def _make_script():  # benchmarks/make_tabular_data.py, imported by path (benchmarks/ is not a package)
    spec = importlib.util.spec_from_file_location("make_tabular_data", ROOT / "benchmarks" / "make_tabular_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_regeneration_is_deterministic(tmp_path: Path) -> None:
    make = _make_script()
    shared = tmp_path / "shared"
    (shared / "benchmarks").mkdir(parents=True)
    for name in make.TABLES:
        (shared / "benchmarks" / name).write_text(f"arch,acc\n{name},1\n")
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert make.main(["--shared", str(shared), "--out", str(out1)]) == 0
    assert make.main(["--shared", str(shared), "--out", str(out2)]) == 0
    for name in make.TABLES:
        a, b = (out1 / f"{name}.gz").read_bytes(), (out2 / f"{name}.gz").read_bytes()
        assert a == b and a[4:8] == b"\0\0\0\0"  # gzip header mtime is 0
        assert gzip.decompress(a) == (shared / "benchmarks" / name).read_bytes()
    assert make.main(["--shared", str(shared), "--out", str(out1), "--check"]) == 0
    (out1 / f"{make.TABLES[0]}.gz").write_bytes(b"stale")
    assert make.main(["--shared", str(shared), "--out", str(out1), "--check"]) == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks not present")
def test_packaged_tables_are_the_shared_ones() -> None:
    for name in ("nb201_cifar10.csv", "nas-bench-macro_cifar10.json"):
        packed = gzip.decompress(packaged_table(name).read_bytes())
        assert hashlib.sha256(packed).digest() == hashlib.sha256((SHARED / name).read_bytes()).digest(), name
