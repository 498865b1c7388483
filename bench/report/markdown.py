"""report.md: its sections in order, each computed from the shared ``Analysis`` and rendered to Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.report.analysis import Analysis
from bench.report.fmt import Namer
from bench.report.plots import Plot
from bench.report.sections import Page, Section
from bench.report.sections.absorbing import AbsorbingState
from bench.report.sections.claims import Claims
from bench.report.sections.convergence import TrainingConvergence
from bench.report.sections.cross_dataset import AcrossDatasets
from bench.report.sections.figures import Figures
from bench.report.sections.main_table import MainTable
from bench.report.sections.methods import Methods
from bench.report.sections.read_first import ReadFirst
from bench.report.sections.sampling import SamplingSpeed
from bench.report.sections.setup import Setup
from bench.report.sections.significance import Significance
from bench.report.sections.sweep_points import SweepPoints
from bench.report.sections.title import Title
from bench.report.sections.trivial import TrivialRows

SECTIONS: tuple[type[Section], ...] = (
    Title, ReadFirst, Claims, Setup, MainTable, TrivialRows, AcrossDatasets, TrainingConvergence, AbsorbingState,
    SweepPoints, SamplingSpeed, Significance, Figures, Methods,
)

S = TypeVar("S", bound=Section)


@dataclass(frozen=True)
class Report:
    """The shared analysis and every section computed from it, in the report's order."""

    analysis: Analysis
    sections: tuple[Section, ...]

    @classmethod
    def compute(cls, a: Analysis) -> Report:
        return cls(a, tuple(section.compute(a) for section in SECTIONS))

    def __getitem__(self, kind: type[S]) -> S:
        """The computed section of type ``kind``."""
        return next(s for s in self.sections if isinstance(s, kind))


def render(report: Report, plots: list[Plot], tables: list[Path], out_dir: Path) -> str:
    """The whole report as Markdown, with links relative to ``out_dir``."""
    page = Page(Namer(report.analysis.cells), out_dir, tables, plots)
    return "\n\n".join(text for section in report.sections if (text := section.render(page))) + "\n"
