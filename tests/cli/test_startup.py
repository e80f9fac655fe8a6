"""Start-up: ``tinyevo --help`` and ``tinyevo estimate`` import neither torch nor scipy, and the parser imports only
the module of the command that runs (checked on ``sys.modules`` in a fresh interpreter, not by the clock)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import contextlib, io, json, sys
from tinyevo.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    code = main({argv!r})
heavy = ("torch", "scipy", "tinyevo", "pydantic", "dask")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def _modules_after(argv: list[str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], capture_output=True, text=True,
                          check=True, timeout=120)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_of_the_cli_entry_point_loads_no_heavy_stack() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, tinyevo.cli.main; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'numpy')))"],
                          capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def test_help_imports_no_subcommand_module() -> None:
    loaded = _modules_after(["--help"])
    assert not _top(loaded) & {"torch", "scipy", "pydantic", "dask"}
    assert not {m for m in loaded if m.startswith("tinyevo.cli.") and m not in
                ("tinyevo.cli.main", "tinyevo.cli._quiet", "tinyevo.cli._signals")}
    assert "tinyevo.run" not in loaded and "tinyevo.strategies" not in loaded


def test_estimate_imports_neither_torch_nor_scipy_nor_other_commands() -> None:
    loaded = _modules_after(["estimate", "--space", "chain", "--json", "conv_k3_s2_c8-gap-dense_c10"])
    assert not _top(loaded) & {"torch", "scipy", "dask"}
    assert "tinyevo.cli.estimate" in loaded
    assert "tinyevo.cli.search" not in loaded and "tinyevo.estimators" not in loaded and "tinyevo.data" not in loaded


def test_command_table_matches_what_the_modules_register() -> None:
    from tinyevo.cli.main import COMMANDS, build_parser

    parser = build_parser()  # every module imported and registered: the oracle
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == COMMANDS


@pytest.mark.parametrize("argv", [
    ["estimate", "--space", "nb201", "--device", "nucleo-f746zg", "--json", "x"],
    ["-v", "devices", "--json"],
    ["show", "runs/x", "--top", "3", "-v"],
])
def test_one_command_parser_parses_like_the_full_parser(argv: list[str]) -> None:
    from tinyevo.cli.main import _command_of, build_parser

    lazy = vars(build_parser(_command_of(argv)).parse_args(argv))
    full = vars(build_parser().parse_args(argv))
    assert {k: v for k, v in lazy.items() if k != "func"} == {k: v for k, v in full.items() if k != "func"}
    assert lazy["func"] is full["func"]


def test_data_package_loads_scipy_only_for_audio() -> None:
    code = ("import sys, numpy as np, tinyevo.data as d; before = 'scipy' in sys.modules; "
            "d.audio.features(np.zeros(1600, np.float32), 16000, d.AudioFrontEnd()); "
            "print(before, 'scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["False", "True"]


def test_builtin_digits_equal_scikit_learns_and_load_without_it() -> None:
    from sklearn.datasets import load_digits

    from tinyevo.data.loaders import _digits_arrays

    data, target = _digits_arrays()
    oracle = load_digits()
    assert data.dtype == oracle.data.dtype and (data == oracle.data).all()
    assert target.dtype == oracle.target.dtype and (target == oracle.target).all()
    code = ("import sys; from tinyevo.data import load_dataset; d = load_dataset('digits'); "
            "print('sklearn' in sys.modules, 'scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split()[-2:] == ["False", "False"]


def test_estimators_package_loads_no_scipy_until_a_curve_is_fitted() -> None:
    code = ("import sys; import tinyevo.estimators; before = 'scipy.optimize' in sys.modules; "
            "from tinyevo.estimators.curves import predict_final; "
            "predict_final([1, 2, 3, 4], [0.3, 0.5, 0.6, 0.65], 10); print(before, 'scipy.optimize' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split()[-2:] == ["False", "True"]
