"""Significance: each configuration against the reference, paired on seed (t and Wilcoxon tests), and
within each seed, a paired bootstrap over test sentences (Koehn 2004); corrected per metric."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import CONFIG_KEYS
from bench.report.fmt import (
    CORRECTION_NAMES,
    NA,
    Namer,
    decimals,
    delta_ci,
    md_table,
    num,
    pvalue,
    signed,
)
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section
from bench.report.significance import seed_tests, sentence_tests


def _seed_verdict(r: dict) -> str:
    if pd.isna(r["t_p"]):
        return f"n/a: {r['note']}"
    if not r["significant"]:
        return "not significant"
    return ("higher" if r["diff"] > 0 else "lower") + ", significant"


def _metric_order(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(metrics)}
    return frame.sort_values("metric", key=lambda m: m.map(rank), kind="stable")


@dataclass(frozen=True)
class Significance(Section):
    """The table of paired tests across seeds, and the counts of significant within-seed bootstraps."""

    seed_tests: pd.DataFrame  # paired tests vs the reference on matched seeds (model configs only)
    sentence_tests: pd.DataFrame  # paired bootstrap over sentences within each seed (model configs only)
    seed_reason: str  # why ``seed_tests`` would be empty
    sentence_reason: str  # why ``sentence_tests`` would be empty
    metrics: list[str]
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> Significance:
        o, models, per_sentence = a.options, a.model_cells, a.results.per_sentence
        no_sentences = "no per_sentence.parquet." if per_sentence is None else a.no_reference
        return cls(
            seed_tests=seed_tests(models, a.references, a.metrics, alpha=o.alpha, correction=o.correction),
            sentence_tests=sentence_tests(models, per_sentence, a.references, n_boot=o.n_boot, alpha=o.alpha,
                                          seed=o.seed, correction=o.correction),
            seed_reason=a.no_reference or "no configuration shares seeds with the reference.",
            sentence_reason=no_sentences or "no cell shares sentences with its reference.",
            metrics=a.metrics, options=o,
        )

    def _seed_text(self, name: Namer) -> str:
        o = self.options
        head = "### Across seeds: each configuration vs the reference, paired on seed"
        tests = self.seed_tests
        if tests.empty:
            return f"{head}\n\nNo paired comparisons: {self.seed_reason}"
        n_min = int(tests["n"].min())
        wilcoxon = (
            f" With n = {n_min} seeds the smallest two-sided Wilcoxon p is {2 / 2 ** n_min:.3g}: below n = 6 it "
            "cannot reach significance at 0.05, so read it as a sign check." if 2 <= n_min < 6 else ""
        )
        rows = [
            name.scope(r) | {
                "config": r["config"], "metric": r["metric"], "n": r["n"],
                "A": num(r["mean_a"]), "B": num(r["mean_b"]), "Δ [CI]": delta_ci(r),
                "d_z": NA if pd.isna(r["d_z"]) else f"{r['d_z']:+.2f}",
                "t-test p (adj.)": f"{pvalue(r['t_p'])} ({pvalue(r['t_p_adj'])})",
                "Wilcoxon p (adj.)": f"{pvalue(r['wilcoxon_p'])} ({pvalue(r['wilcoxon_p_adj'])})",
                "verdict": _seed_verdict(r),
            }
            for r in name.configs(_metric_order(tests, self.metrics))
        ]
        return "\n".join([
            head, "",
            f"A = configuration, B = reference; Δ = A − B with its {1 - o.alpha:.0%} Student-t interval; d_z = mean Δ / "
            f"sd Δ; n = matched seeds. Two-sided p-values, {CORRECTION_NAMES[o.correction]}-corrected within each "
            f"metric (t-tests and Wilcoxon tests separately); **significant** = corrected t-test p < {o.alpha:g}; "
            f"anything else is reported as not significant.{wilcoxon}",
            "", md_table(rows),
        ])

    def _sentence_text(self, name: Namer) -> str:
        o = self.options
        head = "### Within each seed: paired bootstrap over test sentences (Koehn 2004)"
        within = self.sentence_tests
        if within.empty:
            return f"{head}\n\nSkipped: {self.sentence_reason}"
        counts = (
            within.assign(higher=within["significant"] & (within["diff"] > 0),
                          lower=within["significant"] & (within["diff"] < 0))
            .groupby([*CONFIG_KEYS, "metric"], dropna=False, sort=False)
            .agg(seeds=("seed", "nunique"), higher=("higher", "sum"), lower=("lower", "sum"),
                 diff=("diff", "mean"), mean_b=("mean_b", "mean"), sentences=("n_sentences", "max"))
            .reset_index()
        )
        rows = [
            name.scope(r) | {
                "config": r["config"], "metric": r["metric"], "seeds": r["seeds"],
                "A > B (significant)": r["higher"], "A < B (significant)": r["lower"],
                "not significant": r["seeds"] - r["higher"] - r["lower"],
                "mean Δ over seeds": signed(r["diff"], decimals(r["mean_b"])), "sentences": r["sentences"],
            }
            for r in name.configs(_metric_order(counts, self.metrics))
        ]
        family = int(within.groupby("metric").size().max())
        floor = (
            f" **Note:** the smallest attainable p, 1/(B+1) = {1 / (o.n_boot + 1):.2g}, is not below α/m = "
            f"{o.alpha / family:.2g} for a family of m = {family} comparisons, so nothing can be significant: "
            f"raise --n-boot to at least {int(family / o.alpha) + 1}." if 1 / (o.n_boot + 1) >= o.alpha / family else ""
        )
        return "\n".join([
            head, "",
            "Per seed, A (configuration) vs B (the reference cell of the same seed) over the sentences both scored: "
            f"{o.n_boot} resamples of the sentence set (one index matrix for A and B, seed {o.seed}); two-sided p "
            "from the bootstrap distribution shifted to a zero mean difference, "
            f"{CORRECTION_NAMES[o.correction]}-corrected within each metric (m = {family} comparisons at most). "
            "Counts are seeds; `sentence_tests.csv` has every seed's Δ, its CI, P(A > B) and p." + floor,
            "", md_table(rows),
        ])

    def render(self, page: Page) -> str:
        return "\n\n".join(["## Significance", self._seed_text(page.name), self._sentence_text(page.name)])
