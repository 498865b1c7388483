"""Main results: every configuration's mean ± std over seeds with its bootstrap CI, per metric, and
its BLEU margin over copying the source."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import CONFIG_KEYS, COPY_SOURCE
from bench.report.fmt import NA, decimals, md_table, mean_std, num, signed, with_ci
from bench.report.sections import Page, Section
from bench.report.trivial import FAILS


def _mean_cell(r: dict, n_row: int) -> str:
    """``mean ± std`` (n if it differs from the row's), and the bootstrap CI below it."""
    if pd.isna(r["mean"]):
        return NA
    places = decimals(r["mean"])
    n = "" if r["n"] == n_row else f" (n = {int(r['n'])})"
    ci = "" if pd.isna(r["ci_low"]) else f"<br>[{num(r['ci_low'], places)}, {num(r['ci_high'], places)}]"
    return f"{mean_std(r['mean'], r['std'])}{n}{ci}"


def _copy_margin_cell(margins: pd.DataFrame, config: dict) -> str:
    rows = margins.merge(pd.DataFrame([{k: config[k] for k in CONFIG_KEYS}]))
    rows = rows[(rows["trivial"] == COPY_SOURCE) & (rows["metric"] == "bleu")]
    if rows.empty:
        return "—" if config["sampler"] == "none" else NA
    r = rows.iloc[0]
    text = with_ci(r["margin"], r["margin_low"], r["margin_high"], lambda x: signed(x, 4))
    return f"**{text} (fails)**" if r["outcome"] == FAILS else text


@dataclass(frozen=True)
class MainTable(Section):
    """One row per configuration, one column per quality and diversity metric."""

    summary: pd.DataFrame
    metrics: list[str]
    margins: pd.DataFrame
    alpha: float

    @classmethod
    def compute(cls, a: Analysis) -> MainTable:
        return cls(a.summary, a.metrics, a.margins, a.options.alpha)

    def render(self, page: Page) -> str:
        name = page.name
        quality = self.summary[self.summary["metric"].isin(self.metrics)]
        configs = quality.groupby(CONFIG_KEYS, dropna=False, sort=False)["n"].max().reset_index()
        rows = [name.scope(c) | {"config": c["config"], "n": c["n"]} for c in name.configs(configs)]
        for metric in self.metrics:
            merged = configs.merge(quality[quality["metric"] == metric], on=CONFIG_KEYS, how="left",
                                   suffixes=("_row", ""))
            for row, r in zip(rows, merged.to_dict("records"), strict=True):
                row[metric] = _mean_cell(r, r["n_row"])
        if len(self.margins):
            for row, c in zip(rows, configs.to_dict("records"), strict=True):
                row["BLEU − copy_source"] = _copy_margin_cell(self.margins, c)
        return "\n".join([
            "## Main results",
            "",
            f"Mean ± std over seeds; below it the {1 - self.alpha:.0%} percentile-bootstrap CI of the mean "
            "(too narrow with few seeds: see Methods). n = seeds. Corpus BLEU is sacrebleu's, on the same 0-1 scale "
            "as the other scores. Trivial rows (no model) are deterministic: n = 1, no interval. `BLEU − "
            "copy_source`: the configuration's margin over copying the source, with its t interval over seeds.",
            "",
            md_table(rows),
        ])
