"""``tinyevo profile``'s per-op table does not truncate kernel names (or any cell) at 80 columns."""

from __future__ import annotations

import io

from rich.console import Console

from tinyevo.cli.profile import print_op_table

ROWS = [
    ("12", "DEPTHWISE_CONV_2D", "1x24x24x16", "1,234,567", "12,345,678", "10.00", "123,456",
     "12345,23456 -> 34567 (in place)"),
    ("13", "AVERAGE_POOL_2D", "1x2x2x16", "0", "12,345", "", "1,456", "0 -> 34567"),
]


def _render(*, terminal: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None, legacy_windows=False)
    print_op_table(console, "model.tflite on cortex-m4 (mps2-an386, QEMU)", ROWS)
    return out.getvalue()


def test_piped_output_gets_the_whole_table_on_one_line_per_row() -> None:
    text = _render(terminal=False)
    assert "…" not in text
    lines = text.splitlines()
    for row in ROWS:  # every cell, whole, on the row's line
        assert any(all(cell in line for cell in row) for line in lines), row
    assert max(len(line) for line in lines) > 80  # wider than the default console, as needed


def test_narrow_terminal_folds_cells_instead_of_cutting_them() -> None:
    text = _render(terminal=True, width=80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "DEPTHWISE_CONV_2D" in text and "AVERAGE_POOL_2D" in text  # kernel names never fold
    # no cell is cut: every character of every cell is still there (folded cells continue on the next lines)
    for row in ROWS:
        for cell in row:
            assert all(text.count(ch) >= cell.count(ch) for ch in set(cell) if not ch.isspace()), cell
