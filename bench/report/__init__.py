"""The reporting layer: reads only a results directory (``bench.schema``) and writes a Markdown
report with speedup and significance tables, figures and a verdict per paper claim.

    from bench.report import build_report
    build_report("results/main", "results/main/report", level_fraction=0.9, correction="holm")

The names below load on first use, so that importing ``bench.report.cli`` (every ``python -m
bench`` command builds its parser) does not pull in scipy and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Analysis": "analysis", "ReportOptions": "analysis", "analyse": "analysis", "build_report": "build",
    "Results": "load", "ResultsError": "load", "load_results": "load",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bench.report.{_EXPORTS[name]}"), name)
