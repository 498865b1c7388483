"""Across datasets: is each arm's effect over the reference the same on every dataset?

For a suite run on several datasets (within one suite and preset), each model arm's headline
configuration (:func:`bench.report.configs.headline_configs`) is paired on seeds with the
reference configuration of the same dataset. Per dataset: the seed-paired differences
d_s = arm_s − reference_s, their mean y, standard error se = sd(d)/√n and n. Across the k datasets
where n ≥ 2 and sd(d) > 0, with weights w = 1/se²:

- Cochran's Q = Σ w (y − ȳ_w)², ȳ_w = Σ w y / Σ w, against χ² with k − 1 degrees of freedom;
- DerSimonian–Laird τ² = max(0, (Q − (k − 1)) / (Σ w − Σ w² / Σ w)) and I² = max(0, (Q − (k − 1)) / Q);
- the random-effects mean μ = Σ w* y / Σ w* with w* = 1 / (se² + τ²), and its (1 − α) interval
  by the modified Hartung–Knapp–Sidik–Jonkman rule: μ ± t(k − 1) · √(max(1, q) / Σ w*) with
  q = Σ w* (y − μ)² / (k − 1). The textbook normal interval μ ± z (Σ w*)^-½ covers far less than
  1 − α with a few datasets whose se rest on 3 seeds (about 84–87% at α = 0.05 for 4 datasets;
  the modified rule 94–96%; a test checks this);
- Welch's test of equal means (``scipy.stats.f_oneway(..., equal_var=False)``) on the per-seed
  differences: the same weighted spread as Q, referred to an F distribution that allows for each
  se being estimated from n − 1 degrees of freedom. With 3 seeds per dataset Q's χ² reference
  treats those se as known and rejects a true null far more often than α (about 25% at α = 0.05
  for 4 datasets; a test checks this), so the report answers from Welch's test and shows Q, τ²
  and I² beside it.

The random-effects mean is an average of per-dataset effects, never the difference of scores
pooled over the datasets' sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from bench.report.configs import CONFIG_KEYS, headline_configs, is_trivial, reference_configs

GROUP_KEYS = ["suite", "preset"]  # the datasets of one suite at one preset are compared with each other
EFFECT_COLUMNS = [*GROUP_KEYS, "arm", "metric", "dataset", "n", "mean_arm", "mean_ref", "diff", "se"]
POOLED_COLUMNS = [
    *GROUP_KEYS, "arm", "metric", "k", "excluded", "q", "df", "q_p", "tau2", "i2", "pooled", "pooled_se",
    "pooled_low", "pooled_high", "welch_f", "welch_p",
]
_KEY = [*GROUP_KEYS, "arm", "metric"]  # one comparison: an arm against the reference on one metric


@dataclass(frozen=True)
class CrossData:
    """The cross-dataset tables; all empty unless some suite and preset ran ≥ 2 datasets."""

    configs: pd.DataFrame  # CONFIG_KEYS of the configurations compared: each model arm's headline per dataset
    effects: pd.DataFrame  # EFFECT_COLUMNS: per arm, metric and dataset, the seed-paired difference
    pooled: pd.DataFrame  # POOLED_COLUMNS: per arm and metric, heterogeneity and the random-effects mean


def random_effects(y: ArrayLike, se: ArrayLike, *, alpha: float) -> dict[str, float]:
    """Random-effects meta-analysis of k ≥ 2 effects ``y`` with standard errors ``se`` (both (k,),
    in the effects' unit, se > 0): Cochran's Q with its χ² p-value (k − 1 df), the
    DerSimonian–Laird τ², I² (0-1), and the pooled effect with its standard error and modified
    Hartung–Knapp (1 − ``alpha``) t interval (module docstring)."""
    y, v = np.asarray(y, dtype=float), np.asarray(se, dtype=float) ** 2
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = float((w * (y - fixed) ** 2).sum())
    df = y.size - 1
    tau2 = max(0.0, (q - df) / (w.sum() - (w**2).sum() / w.sum()))
    w_re = 1 / (v + tau2)
    pooled = float((w_re * y).sum() / w_re.sum())
    q_hk = float((w_re * (y - pooled) ** 2).sum()) / df
    pooled_se = float(np.sqrt(max(1.0, q_hk) / w_re.sum()))
    half = stats.t.ppf(1 - alpha / 2, df) * pooled_se
    return {"q": q, "df": df, "q_p": float(stats.chi2.sf(q, df)), "tau2": tau2,
            "i2": max(0.0, (q - df) / q) if q > 0 else 0.0, "pooled": pooled, "pooled_se": pooled_se,
            "pooled_low": pooled - half, "pooled_high": pooled + half}


def welch_test(samples: list[np.ndarray]) -> dict[str, float]:
    """Welch's test that k ≥ 2 samples (each (n_i,), n_i ≥ 2, with spread) share one mean: F and
    p (``scipy.stats.f_oneway`` with ``equal_var=False``)."""
    result = stats.f_oneway(*samples, equal_var=False)
    return {"welch_f": float(result.statistic), "welch_p": float(result.pvalue)}


def compared_configs(models: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per dataset of every suite and preset with ≥ 2 datasets: the reference configuration of
    ``baseline`` and each other model arm's headline configuration (CONFIG_KEYS)."""
    several = models.groupby(GROUP_KEYS)["dataset"].transform("nunique") > 1
    models = models[several]
    if models.empty:
        return pd.DataFrame(columns=CONFIG_KEYS)
    picked = [reference_configs(models, baseline)]
    picked += [headline_configs(models, arm) for arm in sorted(set(models["arm"]) - {baseline})]
    return pd.concat(picked, ignore_index=True)[CONFIG_KEYS]


def _seed_values(cells: pd.DataFrame, configs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Wide: one row per (suite, preset, dataset, seed), one column per arm, values of ``metric``."""
    rows = cells.merge(configs, on=CONFIG_KEYS)
    return rows.pivot_table(index=[*GROUP_KEYS, "dataset", "seed"], columns="arm", values=metric, dropna=False)


def _effects(cells: pd.DataFrame, configs: pd.DataFrame, metrics: list[str],
             baseline: str) -> tuple[pd.DataFrame, dict[tuple, np.ndarray]]:
    """Per (suite, preset, arm, metric, dataset) the seed-paired differences' summary, and the
    differences themselves (keyed the same way)."""
    rows, diffs = [], {}
    for metric in [m for m in metrics if m in cells]:
        wide = _seed_values(cells, configs, metric)
        if baseline not in wide:
            continue
        for arm in [a for a in wide.columns if a != baseline]:
            pairs = wide[[arm, baseline]].dropna()
            for (suite, preset, dataset), g in pairs.groupby(level=[*GROUP_KEYS, "dataset"], sort=True):
                d = (g[arm] - g[baseline]).to_numpy(dtype=float)
                key = (suite, preset, arm, metric, dataset)
                diffs[key] = d
                rows.append(dict(zip(_KEY, key[:4], strict=True)) | {
                    "dataset": dataset, "n": d.size, "mean_arm": float(g[arm].mean()),
                    "mean_ref": float(g[baseline].mean()), "diff": float(d.mean()),
                    "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else np.nan})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS), diffs


def _pooled(effects: pd.DataFrame, diffs: dict[tuple, np.ndarray], alpha: float) -> pd.DataFrame:
    """Per (suite, preset, arm, metric): the heterogeneity tests and the random-effects mean over
    the datasets with a standard error (n ≥ 2, spread > 0); the others are named in ``excluded``."""
    rows = []
    for key, g in effects.groupby(_KEY, sort=False):
        usable = g["se"].gt(0)
        row = dict(zip(_KEY, key, strict=True)) | {
            "k": int(usable.sum()), "excluded": ", ".join(g.loc[~usable, "dataset"])}
        if usable.sum() >= 2:
            used = g[usable]
            row |= random_effects(used["diff"], used["se"], alpha=alpha)
            row |= welch_test([diffs[(*key, dataset)] for dataset in used["dataset"]])
        rows.append(row)
    return pd.DataFrame(rows, columns=POOLED_COLUMNS)


def cross_datasets(cells: pd.DataFrame, metrics: list[str], *, baseline: str, alpha: float) -> CrossData:
    """The cross-dataset tables of ``cells`` (one row per cell, one column per metric) for the
    ``metrics`` compared (those with a direction, in report order)."""
    models = cells[~is_trivial(cells)]
    configs = compared_configs(models, baseline)
    effects, diffs = _effects(models, configs, metrics, baseline)
    return CrossData(configs, effects, _pooled(effects, diffs, alpha))
