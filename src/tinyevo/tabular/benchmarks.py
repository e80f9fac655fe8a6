"""Registered tabular benchmarks (``nb201``, ``macro``) and table-backed evaluators.

A :class:`TabularBenchmark` names the search space whose genome strings key the table, the default table file
(shipped gzip-compressed with the package, in ``tinyevo/tabular/data/``; see the README there for sources and
licences), the default fitness metric, and the categorical genes that peer optimisers (Optuna) search over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from tinyevo.errors import ConfigError, DataError
from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome
from tinyevo.tabular.table import Table, load_table


DATA_PACKAGE = "tinyevo.tabular"
DATA_DIR = "data"


def packaged_table(filename: str) -> Traversable:
    """The packaged (gzip-compressed) copy of table ``filename``, e.g. ``nb201_cifar10.csv`` ->
    ``tinyevo/tabular/data/nb201_cifar10.csv.gz``."""
    return resources.files(DATA_PACKAGE).joinpath(DATA_DIR, f"{filename}.gz")


@dataclass(frozen=True)
class TabularBenchmark:
    """A lookup-table benchmark over a registered search space."""

    name: str
    space: str
    filename: str
    metric: str
    genes: tuple[tuple[str, ...], ...]
    compose: Callable[[Sequence[str]], str]
    direction: Literal["max", "min"] = "max"
    description: str = ""

    def default_table(self) -> Traversable:
        """The table shipped with the package (see :func:`packaged_table`)."""
        return packaged_table(self.filename)

    def load(self, path: str | Path | None = None) -> Table:
        """The table at ``path`` (default: :meth:`default_table`); cached per path."""
        if path is not None:
            return load_table(path)
        res = self.default_table()
        if not res.is_file():
            raise DataError(f"the packaged table {self.filename}.gz of benchmark {self.name!r} is missing from this "
                            "tinyevo installation; reinstall tinyevo or pass a table file with --table")
        with resources.as_file(res) as file:  # the file itself, or a temporary copy for a zipped install
            return load_table(file)

    def genome_string(self, choices: Sequence[str]) -> str:
        """The genome string for one choice per gene (used by categorical peer optimisers)."""
        if len(choices) != len(self.genes):
            raise ConfigError(f"{self.name}: expected {len(self.genes)} gene choices, got {len(choices)}")
        return self.compose(tuple(choices))


TABULAR: Registry[TabularBenchmark] = Registry("tabular benchmark")


def get_benchmark(name: str) -> TabularBenchmark:
    return TABULAR.create(name)


def _nb201_compose(choices: Sequence[str]) -> str:
    from tinyevo.spaces.nb201 import NB201Genome

    return str(NB201Genome(tuple(choices)))


@TABULAR.register("nb201", help="NAS-Bench-201 CIFAR-10 (15,625 cells): valid_acc, test_acc, latency_ms_<device>")
def _nb201() -> TabularBenchmark:
    from tinyevo.spaces.nb201 import EDGES, OPS

    return TabularBenchmark(
        name="nb201", space="nb201", filename="nb201_cifar10.csv", metric="valid_acc",
        genes=tuple(OPS for _ in EDGES), compose=_nb201_compose,
        description="NAS-Bench-201 CIFAR-10, fitness = validation accuracy (mean of 3 seeds)",
    )


def _macro_compose(choices: Sequence[str]) -> str:
    return "".join(choices)


@TABULAR.register("macro", help="NAS-Bench-Macro CIFAR-10 (6,561 archs): mean_acc, params, flops")
def _macro() -> TabularBenchmark:
    return TabularBenchmark(
        name="macro", space="macro", filename="nas-bench-macro_cifar10.json", metric="mean_acc",
        genes=tuple(("0", "1", "2") for _ in range(8)), compose=_macro_compose,
        description="NAS-Bench-Macro CIFAR-10, fitness = mean test accuracy of 3 seeds",
    )


class TableLookup:
    """Callable ``genome -> {metric: value}`` reading the genome's row of a table.

    Used both as the evaluator (all columns, or the chosen ``metrics``) and as the free pre-evaluation cost
    function for constraints on table columns. A genome missing from the table raises :class:`DataError`, which
    the search loop records as a failed trial.
    """

    def __init__(self, table: Table, *, metrics: Sequence[str] | None = None) -> None:
        self.table = table
        self.metrics = tuple(table.metrics if metrics is None else metrics)
        table.require(*self.metrics)
        self._cols = [(m, table.column(m)) for m in self.metrics]

    def __call__(self, genome: Genome | str) -> Mapping[str, float]:
        i = self.table.index(str(genome))
        return {m: float(col[i]) for m, col in self._cols}
