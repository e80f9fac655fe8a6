"""Imports flow one way: every ``tinyevo`` module imports only from its own package or from a lower layer.

The check parses each module with :mod:`ast` and follows every ``import`` / ``from ... import`` statement,
including those inside functions (a deferred import hides a cycle; it does not remove it). Imports under
``if TYPE_CHECKING:`` are annotations only and are not checked. The layer order, lowest first:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"<root>", "errors"}),  # tinyevo/__init__ (version only), the named exceptions
    frozenset({"registry", "fsutil", "problem", "trial"}),  # framework-free helpers and shared records
    frozenset({"pareto", "ir", "data", "devices"}),  # pareto: dominance and fronts over trials
    frozenset({"spaces", "nn", "cost"}),  # nn: torch modules (and channel pruning) from the IR
    frozenset({"training"}),  # the training loop: losses, steps, callbacks (used by estimators, supernet, run)
    frozenset({"supernet"}),  # weight-sharing supernet: elastic modules, its training, its scorer
    frozenset({"tinynas", "estimators", "strategies", "storage", "executors"}),
    frozenset({"deploy", "tabular"}),
    frozenset({"codegen"}),  # native int8 C runtime: kernels, memory plan, Cortex-M build and emulation
    frozenset({"run"}),  # a run: config, driver, storage, final retraining, reading a stored run, export of its trials
    frozenset({"cli"}),
)
"""Units are the sub-packages (and top-level modules) of ``tinyevo``; a unit may import from its own unit and
from units of strictly lower layers, never from its own layer or above."""

SRC = Path(__file__).resolve().parents[1] / "src" / "tinyevo"


def _layer(unit: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"unit {unit!r} has no layer; add it to LAYERS in tests/test_layers.py")


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(source: str, module: str, *, is_package: bool = False) -> list[tuple[str, int]]:
    """``(imported tinyevo module, line)`` of every runtime import in ``source`` (the text of ``module``)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "tinyevo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "tinyevo":
                if target == "tinyevo":  # ``from tinyevo import x``: x may be a sub-package
                    found.extend((f"tinyevo.{a.name}" if (SRC / a.name).exists() or (SRC / f"{a.name}.py").exists()
                                  else "tinyevo", node.lineno) for a in node.names)
                else:
                    found.append((target, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that go against :data:`LAYERS`, as readable lines."""
    own = _unit(module)
    out = []
    for target, line in imports(source, module, is_package=is_package):
        unit = _unit(target)
        if unit != own and _layer(unit) >= _layer(own):
            out.append(f"{module}:{line} imports {target} ({unit!r}, layer {_layer(unit)}; "
                       f"{own!r} is layer {_layer(own)})")
    return out


def _modules() -> list[tuple[str, Path, bool]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        out.append((".".join(parts), path, package))
    return out


def test_every_import_follows_the_layer_order() -> None:
    bad = [v for module, path, package in _modules()
           for v in violations(path.read_text(encoding="utf-8"), module, is_package=package)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_every_unit_has_a_layer() -> None:
    for module, _, _ in _modules():
        _layer(_unit(module))


@pytest.mark.parametrize(("module", "source"), [
    ("tinyevo.storage.sqlite", "from tinyevo.strategies.base import Trial\n"),  # same layer
    ("tinyevo.deploy.export", "def f():\n    from tinyevo.run.retraining import best_retrained\n"),  # above, in a function
    ("tinyevo.estimators.trained", "class C:\n    def m(self):\n        import tinyevo.deploy.prune\n"),
    ("tinyevo.trial", "from tinyevo.spaces.base import Genome\n"),  # a record importing a space at run time
    ("tinyevo.cost.memory", "from ..deploy import tflm\n"),  # relative
    ("tinyevo.errors", "from tinyevo import registry\n"),  # ``from tinyevo import <sub-module>``
])
def test_a_wrong_import_is_caught(module: str, source: str) -> None:
    assert violations(source, module)


@pytest.mark.parametrize(("module", "source"), [
    ("tinyevo.deploy.prune", "from tinyevo.nn.prune import prune_channels\n"),
    ("tinyevo.run.export", "from tinyevo.deploy.export import export_model\n"),
    ("tinyevo.storage.sqlite", "from tinyevo import __version__\nfrom .base import RunMeta\n"),
    ("tinyevo.trial", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tinyevo.spaces.base import Genome\n"),
])
def test_a_right_import_passes(module: str, source: str) -> None:
    assert violations(source, module) == []
