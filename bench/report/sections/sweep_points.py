"""Sweep points against the base point: each point of an arm's sweep against the same arm at ``{}``,
seed-paired, with a test of non-inferiority."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.fmt import delta_ci, md_table, num, pvalue
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section
from bench.report.sweeps import sweep_contrasts
from diffuseq.metrics.registry import METRICS


@dataclass(frozen=True)
class SweepPoints(Section):
    """One row per sweep point and metric ("" for a suite without a sweep)."""

    sweeps: pd.DataFrame  # each sweep point vs the base point {}, seed-paired, with non-inferiority
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> SweepPoints:
        o = a.options
        directions = {m: METRICS[m].higher_is_better for m in a.metrics if METRICS[m].higher_is_better is not None}
        return cls(sweep_contrasts(a.model_cells, directions, alpha=o.alpha, margin_fraction=o.equivalence_margin,
                                   correction=o.correction), o)

    def render(self, page: Page) -> str:
        if self.sweeps.empty:
            return ""
        o = self.options
        rows = [
            page.name.scope(r) | {
                "config": f"{r['arm']} {r['label']}", "point": f"`{r['sweep']}`", "metric": r["metric"], "n": r["n"],
                "point mean": num(r["mean_point"], 4), "base mean": num(r["mean_base"], 4),
                "Δ = point − base [t CI]": delta_ci(r | {"mean_b": r["mean_base"]}),
                "margin": num(r["margin"], 4),
                "non-inferior? p (adj.)": (f"{'**yes**' if r['noninferior'] else 'not shown'}: "
                                           f"{pvalue(r['noninferior_p'])} ({pvalue(r['noninferior_p_adj'])})"
                                           if pd.notna(r["noninferior_p"]) else "n/a (fewer than 2 seeds)"),
            }
            for r in self.sweeps.to_dict("records")
        ]
        return "\n".join([
            "## Sweep points against the base point", "",
            "Each sweep point of an arm against the same arm at the base point `{}` (everything else equal), paired on "
            f"seeds: the mean difference with its {1 - o.alpha:.0%} Student-t interval, and the one-sided t-test of "
            f"non-inferiority, Δ > −margin (Δ < +margin for a metric where lower is better), with margin = "
            f"{o.equivalence_margin:.0%} of the base point's mean "
            f"({o.correction}-corrected within each metric). 'Not shown' is not 'worse': it can be too few seeds.",
            "", md_table(rows),
        ])
