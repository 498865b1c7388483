"""The report's sections. A section is its own data: ``compute`` takes what it shows from the shared
``Analysis`` (computing the rest itself), ``render`` writes its Markdown. ``bench.report.markdown``
lists them in the report's order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bench.report.analysis import Analysis
from bench.report.fmt import Namer
from bench.report.plots import Plot


@dataclass(frozen=True)
class Page:
    """What a section's Markdown may need beyond its own data."""

    name: Namer  # how every table names its rows
    out_dir: Path  # where report.md is written: links are relative to it
    tables: list[Path]  # the CSV tables written beside it
    plots: list[Plot]  # its figures, drawn or skipped


class Section(ABC):
    """One part of report.md."""

    @classmethod
    @abstractmethod
    def compute(cls, a: Analysis) -> Section:
        """The section's data, from the shared analysis."""

    @abstractmethod
    def render(self, page: Page) -> str:
        """The section's Markdown; "" leaves it out."""
