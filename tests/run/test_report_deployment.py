from __future__ import annotations

import json
from pathlib import Path

from tinyevo.run.report import _deployment_html


def test_no_export_no_section(tmp_path: Path) -> None:
    assert _deployment_html(tmp_path) == ""


def test_export_reports_become_measured_vs_estimated_rows(tmp_path: Path) -> None:
    d = tmp_path / "export" / "trial-0003-tflite"
    d.mkdir(parents=True)
    doc = {"tflite_bytes": 10000, "estimated_flash_bytes": 10400, "arena_bytes": 2000,
           "estimated_peak_sram_bytes": 1980, "int8_accuracy_tflm": 0.95, "int8_accuracy_torch": 0.951}
    (d / "report.json").write_text(json.dumps(doc))
    html = _deployment_html(tmp_path)
    assert "measured on TFLite-Micro vs estimated" in html
    assert "trial-0003-tflite" in html
    assert "+4.0 %" in html  # flash estimate 4 % above the real file
    assert "-1.0 %" in html  # SRAM estimate 1 % below the measured arena
