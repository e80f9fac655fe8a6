"""Tabular NAS benchmarks: lookup tables of precomputed results, table-backed evaluators and the bench runner."""

from __future__ import annotations

from tinyevo.tabular.benchmarks import TABULAR, TableLookup, TabularBenchmark, get_benchmark, packaged_table
from tinyevo.tabular.table import Table, load_table

__all__ = ["TABULAR", "Table", "TableLookup", "TabularBenchmark", "get_benchmark", "load_table", "packaged_table"]
