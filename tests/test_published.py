"""Every committed report under results/ rebuilds byte for byte from its committed tables, so a
published report can never drift from its data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.report import build_report

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p.parent.parent for p in (REPO / "results").glob("*/report/report.md"))


@pytest.mark.parametrize("suite_dir", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_committed_report_rebuilds_from_its_tables(suite_dir: Path, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "results" / suite_dir.name
    shutil.copytree(suite_dir, copy, ignore=shutil.ignore_patterns("models", "samples", "jobs", "report"))
    monkeypatch.chdir(tmp_path)  # the report names its results directory as given: results/<suite>
    built = build_report(f"results/{suite_dir.name}", tmp_path / "report")
    assert built.read_text(encoding="utf-8") == (suite_dir / "report" / "report.md").read_text(encoding="utf-8")


def test_every_published_suite_has_its_manifest_and_examples() -> None:
    for suite_dir in PUBLISHED:
        assert (suite_dir / "MANIFEST.json").is_file(), suite_dir
        assert (suite_dir / "table.csv").is_file() and (suite_dir / "cells").is_dir(), suite_dir
