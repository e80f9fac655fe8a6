"""Table loading and lookup on tiny generated files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyevo.errors import ConfigError, DataError
from tinyevo.tabular import TableLookup, get_benchmark, load_table
from tinyevo.tabular.table import Table


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_lookup(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "index,arch,acc,lat,name\n0,a,90.5,3,x\n1,b,91.25,,y\n2,c,89,1.5,z\n")
    t = load_table(p)
    assert len(t) == 3 and "b" in t and "d" not in t
    assert t.metrics == ("index", "acc", "lat")  # the text column 'name' is not a metric
    assert t.value("b", "acc") == 91.25
    assert math.isnan(t.value("b", "lat"))
    assert t.row("c") == {"index": 2.0, "acc": 89.0, "lat": 1.5}
    assert t.best("acc") == ("b", 91.25)
    assert t.best("acc", direction="min") == ("c", 89.0)
    assert t.best("lat") == ("a", 3.0)  # NaN ignored
    assert t.best("acc", mask=np.array([True, False, True])) == ("a", 90.5)


def test_load_is_cached_per_path(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "arch,acc\na,1\n")
    assert load_table(p) is load_table(p)
    other = write(tmp_path / "u.csv", "arch,acc\na,1\n")
    assert load_table(other) is not load_table(p)


def test_missing_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not found"):
        get_benchmark("nb201").load(tmp_path / "nope.csv")


def test_unknown_metric_lists_columns(tmp_path: Path) -> None:
    t = load_table(write(tmp_path / "t.csv", "arch,acc,lat\na,1,2\n"))
    with pytest.raises(ConfigError, match="no numeric column 'valid_acc'; columns: acc, lat"):
        t.column("valid_acc")
    with pytest.raises(ConfigError):
        TableLookup(t, metrics=("acc", "oops"))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no 'arch' column"):
        load_table(write(tmp_path / "a.csv", "name,acc\na,1\n"))
    with pytest.raises(DataError, match="more than once"):
        load_table(write(tmp_path / "b.csv", "arch,acc\na,1\na,2\n"))
    with pytest.raises(DataError, match="expected 2 fields"):
        load_table(write(tmp_path / "c.csv", "arch,acc\na,1,3\n"))
    with pytest.raises(DataError, match="empty"):
        load_table(write(tmp_path / "d.csv", ""))
    with pytest.raises(DataError, match="not valid JSON"):
        load_table(write(tmp_path / "e.json", "{"))


def test_unknown_arch_raises_data_error(tmp_path: Path) -> None:
    t = load_table(write(tmp_path / "t.csv", "arch,acc\na,1\n"))
    with pytest.raises(DataError, match="'zz' is not in table"):
        TableLookup(t)("zz")


def test_macro_style_json(tmp_path: Path) -> None:
    data = {
        "00000000": {"test_acc": [80.0, 81.0, 82.0], "mean_acc": 81.0, "std": 0.8, "params": 1000, "flops": 5e6},
        "12121212": {"test_acc": [92.0, 92.5, 93.0], "mean_acc": 92.5, "std": 0.4, "params": 9000, "flops": 6e7},
    }
    t = load_table(write(tmp_path / "m.json", json.dumps(data)))
    assert t.metrics == ("mean_acc", "std", "params", "flops")  # the per-seed list is not a scalar metric
    assert t.best("mean_acc") == ("12121212", 92.5)
    assert TableLookup(t, metrics=("mean_acc", "params"))("00000000") == {"mean_acc": 81.0, "params": 1000.0}


def test_table_is_read_only() -> None:
    t = Table(name="x", keys=("a", "b"), columns={"m": [1.0, 2.0]})
    with pytest.raises(ValueError):
        t.column("m")[0] = 5.0
    with pytest.raises(DataError, match="has \\(1,\\) values for 2 rows"):
        Table(name="x", keys=("a", "b"), columns={"m": [1.0]})


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.text("abc|~+_0123", min_size=1, max_size=12).filter(lambda s: s.strip() == s),
        st.floats(-1e6, 1e6, allow_nan=False),
        min_size=1, max_size=20,
    )
)
def test_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, values: dict[str, float]) -> None:
    path = tmp_path_factory.mktemp("rt") / "t.csv"
    path.write_text("arch,v\n" + "".join(f"{k},{v!r}\n" for k, v in values.items()))
    t = load_table(path)
    assert set(t.keys) == set(values)
    for k, v in values.items():
        assert t.value(k, "v") == v
    best_key, best = t.best("v")
    assert best == max(values.values()) and values[best_key] == best
