"""Figures: each figure drawn beside report.md with a link to its data, or why it was skipped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.report.analysis import Analysis
from bench.report.sections import Page, Section


@dataclass(frozen=True)
class Figures(Section):
    """Lists the page's plots (``bench.report.build`` draws them from the other sections' data)."""

    @classmethod
    def compute(cls, a: Analysis) -> Figures:
        return cls()

    def render(self, page: Page) -> str:
        lines = ["## Figures"]
        for plot in page.plots:
            lines += ["", f"### {plot.title}", ""]
            if plot.png is None:
                lines.append(f"_Skipped: {plot.skipped}_")
            else:
                png, csv = (Path(os.path.relpath(p, page.out_dir)).as_posix() for p in (plot.png, plot.csv))
                lines += [f"![{plot.title}]({png})", "", f"Data: [{csv}]({csv})"]
        return "\n".join(lines)
