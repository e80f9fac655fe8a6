"""Rough edges a new user hits (issue 16): one-line errors, closed pipes, readable output at 80 columns."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinyevo.cli.main import main

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.mark.parametrize("argv", [
    ["estimate", NB201, "--space", "nb201", "--json", "--ops"],
    ["devices", "--json"],
])
def test_closed_stdout_pipe_exits_without_a_traceback(argv: list[str]) -> None:
    # `tinyevo estimate --json | head`: the reader is gone before the command writes
    p = subprocess.Popen([sys.executable, "-m", "tinyevo.cli.main", *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    code = p.wait(timeout=1800)  # a hang guard only
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 1
