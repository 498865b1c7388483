"""Significance tables: summaries across seeds and paired comparisons against the reference config."""

from __future__ import annotations

import pandas as pd

from bench.report.configs import CONFIG_KEYS, SCOPE_KEYS, is_reference
from bench.report.stats import adjust, bootstrap_ci, paired_bootstrap, paired_test, t_interval


def _long_metrics(cells: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Cells back in long form, one row per (cell, metric) with a value, for the given metrics."""
    return cells.melt(
        id_vars=[*CONFIG_KEYS, "seed", "cell_id"], value_vars=metrics, var_name="metric"
    ).dropna(subset=["value"])


def summarize_seeds(
    cells: pd.DataFrame, metrics: list[str], *, n_boot: int, alpha: float, seed: int
) -> pd.DataFrame:
    """Per configuration × metric: n seeds, mean, std, percentile-bootstrap CI and Student-t CI."""
    grouped = _long_metrics(cells, metrics).groupby([*CONFIG_KEYS, "metric"], dropna=False, sort=False)["value"]
    summary = grouped.agg(n="size", mean="mean", std="std")
    boot = grouped.apply(lambda v: bootstrap_ci(v, n_boot=n_boot, alpha=alpha, seed=seed))
    t = grouped.apply(lambda v: t_interval(v, alpha=alpha))
    summary[["ci_low", "ci_high"]] = pd.DataFrame(boot.tolist(), index=boot.index)
    summary[["t_low", "t_high"]] = pd.DataFrame(t.tolist(), index=t.index)
    return summary.reset_index()


SEED_TEST_COLUMNS = [
    *CONFIG_KEYS, "metric", "n", "mean_a", "mean_b", "diff", "diff_low", "diff_high", "d_z",
    "t_p", "wilcoxon_p", "note", "t_p_adj", "wilcoxon_p_adj", "significant",
]


def seed_tests(
    cells: pd.DataFrame, references: pd.DataFrame, metrics: list[str], *, alpha: float, correction: str
) -> pd.DataFrame:
    """Each configuration vs its scope's reference on matched seeds (A = config, B = reference).

    Paired t-test and Wilcoxon per metric; each test's p-values are corrected within each metric
    (one family per metric and test, across configurations and scopes).
    ``significant`` uses the corrected t-test p-value.
    """
    long = _long_metrics(cells, metrics)
    reference = is_reference(long, references)
    pairs = long[~reference].merge(
        long.loc[reference, [*SCOPE_KEYS, "seed", "metric", "value"]],
        on=[*SCOPE_KEYS, "seed", "metric"], suffixes=("", "_ref"),
    )
    keys = [*CONFIG_KEYS, "metric"]
    tests = pd.DataFrame(
        [
            dict(zip(keys, key, strict=True)) | paired_test(g["value"], g["value_ref"], alpha=alpha)
            for key, g in pairs.groupby(keys, dropna=False, sort=False)
        ],
        columns=SEED_TEST_COLUMNS[:-3],
    )
    by_metric = tests.groupby("metric")
    tests["t_p_adj"] = by_metric["t_p"].transform(adjust, method=correction)
    tests["wilcoxon_p_adj"] = by_metric["wilcoxon_p"].transform(adjust, method=correction)
    tests["significant"] = tests["t_p_adj"] < alpha
    return tests


SENTENCE_TEST_COLUMNS = [
    *CONFIG_KEYS, "seed", "metric", "n_sentences", "mean_a", "mean_b", "diff", "diff_low",
    "diff_high", "p_a_better", "p", "p_adj", "significant",
]


def sentence_tests(
    cells: pd.DataFrame,
    per_sentence: pd.DataFrame | None,
    references: pd.DataFrame,
    *,
    n_boot: int,
    alpha: float,
    seed: int,
    correction: str,
) -> pd.DataFrame:
    """Paired bootstrap over test sentences between each cell and the reference cell of its seed.

    One row per (cell, metric) over the sentences both cells scored; p-values corrected within
    each metric (across configurations, seeds and scopes). Without per-sentence scores the table is empty.
    """
    reference = is_reference(cells, references)
    pairs = cells[~reference].merge(
        cells.loc[reference, [*SCOPE_KEYS, "seed", "cell_id"]].rename(columns={"cell_id": "ref_cell"}),
        on=[*SCOPE_KEYS, "seed"],
    )
    scores = {} if per_sentence is None else {
        cell: g.set_index(["sentence", "metric"])["value"] for cell, g in per_sentence.groupby("cell_id")
    }
    rows = []
    for pair in pairs[[*CONFIG_KEYS, "seed", "cell_id", "ref_cell"]].to_dict("records"):
        if pair["cell_id"] not in scores or pair["ref_cell"] not in scores:
            continue
        joined = pd.concat([scores[pair["cell_id"]], scores[pair["ref_cell"]]], axis=1, keys=["a", "b"], join="inner")
        keys = {k: pair[k] for k in [*CONFIG_KEYS, "seed"]}
        rows += [
            keys | {"metric": metric} | paired_bootstrap(g["a"], g["b"], n_boot=n_boot, alpha=alpha, seed=seed)
            for metric, g in joined.groupby(level="metric")
        ]
    tests = pd.DataFrame(rows, columns=SENTENCE_TEST_COLUMNS[:-2])
    tests["p_adj"] = tests.groupby("metric")["p"].transform(adjust, method=correction)
    tests["significant"] = tests["p_adj"] < alpha
    return tests
