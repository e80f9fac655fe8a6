"""Third-party output stays off the terminal unless -v; tinyevo's own log records and errors still show."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator

import pytest

from tinyevo.cli._quiet import configure_logging, third_party_output_hidden


@pytest.fixture
def terminal_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.StreamHandler]:  # type: ignore[type-arg]
    """A root handler writing to ``sys.stderr``, as ``logging.basicConfig`` makes outside pytest (the test body
    first points ``sys.stdout`` / ``sys.stderr`` at file descriptors 1 and 2 with :func:`on_descriptors`)."""
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def on_descriptors(monkeypatch: pytest.MonkeyPatch, handler: logging.StreamHandler) -> None:  # type: ignore[type-arg]
    """``sys.stdout`` / ``sys.stderr`` writing to file descriptors 1 and 2, as outside pytest (capfd replaces them
    when the test body starts, so this runs in the body)."""
    monkeypatch.setattr(sys, "stdout", os.fdopen(1, "w", closefd=False))
    monkeypatch.setattr(sys, "stderr", os.fdopen(2, "w", closefd=False))
    handler.setStream(sys.stderr)


def chatter() -> None:
    os.write(2, b"C-level stderr noise\n")
    os.write(1, b"C-level stdout noise\n")
    print("python stdout noise")
    print("python stderr noise", file=sys.stderr)
    logging.getLogger("torchao.kernel").warning("third-party warning")
    logging.getLogger("tinyevo.deploy.x").warning("our own warning")
    logging.getLogger("litert").error("third-party error")
    with warnings.catch_warnings():  # "always": the registry would drop a repeat from an earlier test
        warnings.simplefilter("always")
        warnings.warn("a python warning", UserWarning, stacklevel=1)
    sys.stdout.flush()
    sys.stderr.flush()


def test_third_party_output_is_hidden_but_ours_and_errors_show(terminal_handler: logging.StreamHandler,  # type: ignore[type-arg]
                                                                capfd: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    on_descriptors(monkeypatch, terminal_handler)
    configure_logging(False)
    with third_party_output_hidden(False):
        chatter()
    out, err = capfd.readouterr()
    assert out == ""
    assert "our own warning" in err and "third-party error" in err
    for noise in ("C-level", "python stderr noise", "third-party warning", "a python warning"):
        assert noise not in err


def test_verbose_shows_everything(terminal_handler: logging.StreamHandler,  # type: ignore[type-arg]
                                  capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    on_descriptors(monkeypatch, terminal_handler)
    configure_logging(True)
    logging.getLogger().setLevel(logging.DEBUG)
    with third_party_output_hidden(True):
        chatter()
    out, err = capfd.readouterr()
    assert "C-level stdout noise" in out and "python stdout noise" in out
    for text in ("C-level stderr noise", "python stderr noise", "third-party warning", "our own warning",
                 "a python warning"):
        assert text in err


def test_descriptors_are_restored_after_an_exception(terminal_handler: logging.StreamHandler,  # type: ignore[type-arg]
                                                     capfd: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    on_descriptors(monkeypatch, terminal_handler)
    configure_logging(False)
    with pytest.raises(RuntimeError), third_party_output_hidden(False):
        os.write(2, b"hidden\n")
        raise RuntimeError("boom")
    os.write(2, b"visible again\n")
    print("stdout again", flush=True)
    out, err = capfd.readouterr()
    assert err == "visible again\n" and out == "stdout again\n"


@pytest.mark.parametrize(("argv", "verbose"), [
    (["-v", "export", "RUN"], True), (["export", "RUN", "-v"], True), (["export", "RUN", "--verbose"], True),
    (["export", "RUN"], False), (["search", "-v"], True),
])
def test_verbose_flag_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    from tinyevo.cli.main import build_parser

    assert build_parser().parse_args(argv).verbose is verbose
