"""Across datasets (two or more): each configuration's mean per dataset beside the trivial rows, each
arm's seed-paired effect over the reference per dataset, and whether that effect is the same on
every dataset."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench import schema
from bench.report.analysis import Analysis
from bench.report.claims import CLAIM_ARM
from bench.report.configs import CONFIG_KEYS, SCOPE_KEYS, TRIVIAL_ARMS, config_labels, is_trivial
from bench.report.crossdata import CrossData, cross_datasets
from bench.report.fmt import NA, Namer, md_table, num, pvalue, signed, with_ci
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section
from diffuseq.metrics.registry import METRICS


@dataclass(frozen=True)
class AcrossDatasets(Section):
    """The answer to the question asked in advance, the per-dataset table and the heterogeneity table
    ("" with one dataset)."""

    crossdata: CrossData
    summary: pd.DataFrame
    metrics: list[str]
    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> AcrossDatasets:
        o = a.options
        compared = [m for m in a.metrics
                    if m in schema.quality_metrics() and METRICS[m].higher_is_better is not None]
        return cls(cross_datasets(a.cells, compared, baseline=o.baseline, alpha=o.alpha), a.summary, a.metrics, o)

    def _per_dataset_table(self, name: Namer, metrics: list[str]) -> tuple[str, str]:
        """Each dataset × metric: every compared configuration's mean [t CI] and the trivial rows'
        values; and the sentence naming the configurations behind the column names."""
        x = self.crossdata
        values = self.summary[self.summary["metric"].isin(metrics)]
        shown = pd.concat([values.merge(x.configs, on=CONFIG_KEYS),
                           values[is_trivial(values)].merge(x.configs[SCOPE_KEYS].drop_duplicates())])
        arms = list(dict.fromkeys([*x.configs["arm"], *sorted(set(shown["arm"]) - set(x.configs["arm"]),
                                                               key=TRIVIAL_ARMS.index)]))
        rows: dict[tuple, dict] = {}
        for r in shown.to_dict("records"):
            row = rows.setdefault((r["metric"], *(r[k] for k in SCOPE_KEYS)), name.scope(r) | {"metric": r["metric"]})
            row[f"`{r['arm']}`"] = with_ci(r["mean"], r["t_low"], r["t_high"], lambda v: num(v, 4))
        order = sorted(rows, key=lambda k: (metrics.index(k[0]), *map(str, k[1:])))
        columns = [f"`{arm}`" for arm in arms]
        table = md_table([{k: v for k, v in rows[key].items() if k not in columns}
                          | {c: rows[key].get(c, NA) for c in columns} for key in order])
        labels = x.configs.assign(config=config_labels(x.configs)).groupby("arm", sort=False)["config"]
        named = "; ".join(f"`{arm}`: {', '.join(f'`{c}`' for c in dict.fromkeys(g))}" for arm, g in labels)
        return table, named

    def _effects_of(self, r: dict) -> pd.DataFrame:
        """The per-dataset effects behind one row of the heterogeneity table."""
        return self.crossdata.effects.merge(pd.DataFrame([{k: r[k] for k in ["suite", "preset", "arm", "metric"]}]))

    def _answer(self, r: dict) -> str:
        """The sentence answering whether v2's BLEU effect over the reference is the same on every dataset."""
        o, effects = self.options, self._effects_of(r)
        question = "**Is v2's effect over DiffuSeq the same on every dataset?**"
        per = "; ".join(f"{e['dataset']} {signed(e['diff'], 4)} ± {num(e['se'], 4)} (n = {e['n']})"
                        for e in effects.to_dict("records"))
        excluded = f" Left out (fewer than 2 paired seeds, or no spread): {r['excluded']}." if r["excluded"] else ""
        if pd.isna(r["welch_p"]):
            return (f"{question} Not answerable here: fewer than 2 datasets where `{CLAIM_ARM}` and `{o.baseline}` share "
                    f"2 or more seeds with a non-zero spread of their BLEU difference. Per dataset: {per}.{excluded}")
        tests = (f"Welch's test of equal effects F = {r['welch_f']:.2f}, p = {pvalue(r['welch_p'])}; Cochran's Q = "
                 f"{r['q']:.2f} on {int(r['df'])} df (χ² p = {pvalue(r['q_p'])}), I² = {r['i2']:.0%}, τ² = {r['tau2']:.3g}")
        pooled = with_ci(r["pooled"], r["pooled_low"], r["pooled_high"], lambda v: signed(v, 4))
        what = f"BLEU, `{CLAIM_ARM}` − `{o.baseline}` paired on seeds, {int(r['k'])} datasets"
        if r["welch_p"] < o.alpha:
            return (f"{question} **No** ({what}): the difference varies between the datasets ({tests}). Per dataset "
                    f"(mean ± standard error): {per}.{excluded} The random-effects mean, {pooled}, averages effects "
                    "that differ; it is not an effect that each dataset shows.")
        seeds_min = int(effects["n"].min())
        return (f"{question} **Not shown to differ** ({what}): {tests}. Per dataset (mean ± standard error): "
                f"{per}.{excluded} With {seeds_min} seeds per dataset only large differences between datasets can "
                "be detected, so this is not evidence that the effect is the same. Random-effects mean over these "
                f"datasets: {pooled} (DerSimonian–Laird): an average of the per-dataset effects, not one effect "
                "measured on the datasets pooled.")

    def render(self, page: Page) -> str:
        x, o, name = self.crossdata, self.options, page.name
        if x.configs.empty:
            return ""
        metrics = [m for m in self.metrics if m in set(x.effects["metric"])]
        table, named = self._per_dataset_table(name, metrics)
        scope = [k for k in ("suite", "preset") if k in name.varying]
        answers = [
            "".join(f"{r[k]}: " for k in scope) + self._answer(r)
            for r in x.pooled[(x.pooled["arm"] == CLAIM_ARM) & (x.pooled["metric"] == "bleu")].to_dict("records")
        ] or [f"No `{CLAIM_ARM}` and `{o.baseline}` BLEU on two or more datasets: the question is not asked here."]
        rows = []
        for r in x.pooled.to_dict("records"):
            effects = self._effects_of(r)
            rows.append({k: r[k] for k in scope} | {"arm − reference": f"`{r['arm']}` − `{o.baseline}`",
                                                    "metric": r["metric"]}
                        | {e["dataset"]: f"{signed(e['diff'], 4)} ± {num(e['se'], 4)} (n = {e['n']})"
                           for e in effects.to_dict("records")}
                        | {"k": r["k"], "Welch p": pvalue(r["welch_p"]),
                           "Q (df)": NA if pd.isna(r["q"]) else f"{r['q']:.2f} ({int(r['df'])})",
                           "χ² p": pvalue(r["q_p"]), "I²": NA if pd.isna(r["i2"]) else f"{r['i2']:.0%}",
                           "τ²": NA if pd.isna(r["tau2"]) else f"{r['tau2']:.3g}",
                           f"random-effects mean [{1 - o.alpha:.0%} CI]": with_ci(
                               r["pooled"], r["pooled_low"], r["pooled_high"], lambda v: signed(v, 4))})
        return "\n".join([
            "## Across datasets", "", *answers, "",
            f"Per dataset: each configuration's mean over seeds with its {1 - o.alpha:.0%} Student-t interval, and "
            f"the trivial rows (deterministic, no interval). Configurations: {named}.", "", table, "",
            f"Each arm's effect over `{o.baseline}` per dataset: the mean of its seed-paired differences ± their "
            "standard error (sd / √n), n seeds. Across the k datasets with a standard error: Welch's test that the "
            "datasets share one effect (scipy.stats.f_oneway with unequal variances, on the per-seed differences), "
            "Cochran's Q = Σ w (y − ȳ_w)² with w = 1/se² against χ² on k − 1 df, I² = max(0, (Q − (k − 1)) / Q), and "
            "the DerSimonian–Laird between-dataset variance τ² and random-effects mean (weights 1/(se² + τ²), "
            "modified Hartung–Knapp t interval on k − 1 df: a normal interval covers far less than it claims "
            "with a few datasets of 3 seeds). Q's χ² p treats each standard error as known; estimated from a few seeds it is far too "
            "small (3 seeds on each of 4 datasets: about 25% false alarms at 0.05), so the answer above rests on "
            f"Welch's test, which allows for that. The `{CLAIM_ARM}` BLEU row answers the question asked in advance; the other rows are "
            "descriptive (p-values not corrected). The random-effects mean averages per-dataset effects; it is "
            "never a score of the datasets pooled into one set.", "",
            md_table(rows),
        ])
