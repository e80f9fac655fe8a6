"""The crash-tolerant arena bisection (:func:`tinyevo.deploy.tflm.probe_arena`) with a fake probe child.

The fake child speaks the real protocol (:func:`tinyevo.deploy._tflm_probe.main`) but decides "fits" itself: a
size fits when it is at least ``MIN``; sizes in ``CRASH`` kill the child with SIGSEGV, as TFLite-Micro does for a few
sizes just below the minimum of some models. No TFLite-Micro is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tinyevo.deploy.tflm as tflm
from tinyevo.deploy import DeployError
from tinyevo.deploy.tflm import probe_arena

FAKE = """
import os, signal, sys
from tinyevo.deploy._tflm_probe import main

MIN, CRASH, EXIT = {minimum}, set({crash}), {exit_code}


def fits(model, n):
    with open({log!r}, "a") as f:
        f.write(f"{{n}}\\n")
    if EXIT:
        raise SystemExit(EXIT)
    if n in CRASH:
        os.kill(os.getpid(), signal.SIGSEGV)
    return (n >= MIN, "" if n >= MIN else "too small")


raise SystemExit(main(sys.argv[1:], fits=fits))
"""


def fake_probe(tmp_path: Path, *, minimum: int, crash: set[int], exit_code: int = 0) -> tuple[list[str], Path]:
    log = tmp_path / "probes.txt"
    script = tmp_path / "fake_probe.py"
    script.write_text(FAKE.format(minimum=minimum, crash=sorted(crash), exit_code=exit_code, log=str(log)))
    return [sys.executable, str(script)], log


def probed(log: Path) -> list[int]:
    return [int(v) for v in log.read_text().split()] if log.exists() else []


def test_crashes_below_the_minimum_count_as_too_small_and_the_bisection_goes_on(tmp_path: Path) -> None:
    # the sizes of the default digits model: 3,088 B works, 3,072..3,087 B crash TFLM
    minimum, crash = 3088, set(range(3072, 3088))
    cmd, log = fake_probe(tmp_path, minimum=minimum, crash=crash)
    result = probe_arena(b"model", lower=1, upper=84488, command=cmd)
    assert result.required == minimum
    assert result.fits[minimum] is True  # the answer was seen to work in a child
    assert result.crashed and set(result.crashed) <= crash
    assert result.children == len(result.crashed) + 1  # one fresh child per crash
    sizes = probed(log)
    assert len(sizes) == len(set(sizes))  # a size that crashed is not tried again
    assert all(result.fits[n] == (n >= minimum) for n in sizes)
    assert set(sizes) == set(result.fits)


@pytest.mark.parametrize(("minimum", "crash", "lower", "upper"), [
    (100, {99}, 1, 1000),                   # only the size just below crashes
    (100, set(range(1, 100)), 1, 1000),     # every size that does not fit crashes
    (777, {500, 700, 776}, 600, 777),       # the upper bound is the answer
    (64, {10, 11, 12}, 64, 64),             # a single size that fits
])
def test_the_result_is_the_smallest_size_that_fits(tmp_path: Path, minimum: int, crash: set[int], lower: int,
                                                   upper: int) -> None:
    cmd, log = fake_probe(tmp_path, minimum=minimum, crash=crash)
    result = probe_arena(b"model", lower=lower, upper=upper, command=cmd)
    assert result.required == minimum
    assert minimum - 1 not in result.fits or result.fits[minimum - 1] is False
    assert set(result.crashed) == set(probed(log)) & crash


def test_a_crash_at_the_upper_bound_means_it_does_not_fit(tmp_path: Path) -> None:
    cmd, _ = fake_probe(tmp_path, minimum=5000, crash={4000})
    result = probe_arena(b"model", lower=1, upper=4000, command=cmd)
    assert result.required is None and result.crashed == (4000,) and result.fits == {4000: False}
    assert "crashed" in result.detail


def test_a_size_below_the_minimum_that_does_not_crash_does_not_fit(tmp_path: Path) -> None:
    cmd, _ = fake_probe(tmp_path, minimum=5000, crash=set())
    result = probe_arena(b"model", lower=4000, upper=4000, command=cmd)
    assert result.required is None and result.crashed == () and result.detail == "too small"


def test_a_child_that_fails_without_a_signal_is_an_error_not_a_retry(tmp_path: Path) -> None:
    cmd, log = fake_probe(tmp_path, minimum=100, crash=set(), exit_code=3)
    with pytest.raises(DeployError, match="exited with status 3"):
        probe_arena(b"model", lower=1, upper=1000, command=cmd)
    assert probed(log) == [1000]


def test_too_many_crashes_give_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tflm, "_MAX_CHILDREN", 2)
    cmd, log = fake_probe(tmp_path, minimum=100, crash=set(range(1, 100)))
    with pytest.raises(DeployError, match="crashed 2 times"):
        probe_arena(b"model", lower=1, upper=1000, command=cmd)
    assert [n for n in probed(log) if n < 100] == [63, 94]  # two children, each stopped by its crash
