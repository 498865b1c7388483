"""Trivial rows: their values, and each configuration's margin over each of them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import CONFIG_KEYS, SCOPE_KEYS, is_trivial
from bench.report.fmt import NA, md_table, num, signed, with_ci
from bench.report.sections import Page, Section
from bench.report.trivial import FAILS, NO_TRIVIAL, UNCLEAR


@dataclass(frozen=True)
class TrivialRows(Section):
    """The trivial rows' values (deterministic) and the margins over them, failures in bold."""

    values: pd.DataFrame  # the trivial cells
    margins: pd.DataFrame
    alpha: float

    @classmethod
    def compute(cls, a: Analysis) -> TrivialRows:
        return cls(a.cells[is_trivial(a.cells)], a.margins, a.options.alpha)

    def render(self, page: Page) -> str:
        head = "## Trivial rows: margins over doing nothing"
        if self.values.empty:
            return f"{head}\n\nSkipped: {NO_TRIVIAL}"
        name = page.name
        metrics = list(dict.fromkeys(self.margins["metric"]))
        rows = []
        for (_, g) in self.margins.groupby([*CONFIG_KEYS, "trivial"], dropna=False, sort=False):
            first = name.configs(g.iloc[:1])[0]
            row = name.scope(first) | {"config": first["config"], "vs": f"`{first['trivial']}`"}
            for r in g.to_dict("records"):
                text = with_ci(r["margin"], r["margin_low"], r["margin_high"], lambda x: signed(x, 4))
                row[r["metric"]] = {FAILS: f"**{text} fails**", UNCLEAR: f"{text} unclear"}.get(r["outcome"], text)
            rows.append({k: row.get(k, NA) for k in [*row.keys(), *metrics]})
        shown = [m for m in metrics if m in self.values]
        trivial_rows = [
            name.scope(r) | {"trivial row": f"`{r['arm']}`"} | {m: num(r[m], 4) for m in shown}
            for r in self.values.sort_values([*SCOPE_KEYS, "arm"]).to_dict("records")
        ]
        return "\n".join([
            head, "",
            "The trivial rows' values (deterministic, one cell per dataset):", "", md_table(trivial_rows), "",
            "Each model configuration's margin over each trivial row (mean over seeds − the trivial value, with the "
            f"configuration's {1 - self.alpha:.0%} Student-t interval; the trivial value is a constant). "
            "**fails**: the mean is at or below the trivial row; unclear: above it, but the interval reaches it.",
            "", md_table(rows),
        ])
