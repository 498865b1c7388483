"""Sweep points against the base point: what one training setting does to an arm's quality.

A suite with a sweep (e.g. ``precision``: ``{}`` and ``{optim.bf16: true}``) trains each arm at
several points. Per configuration and metric with a direction (``higher_is_better`` in the
metric registry), every other point is paired with the base point (the sweep ``{}``) on matched
seeds: the mean difference (point − base) with its Student-t interval, and the one-sided
non-inferiority test, Δ > −margin (Δ < +margin where lower is better), with margin =
``margin_fraction`` × the base point's mean (the claims' quality margin). The p-values are
corrected within each metric.
"""

from __future__ import annotations

import pandas as pd

from bench.report.configs import CONFIG_KEYS
from bench.report.stats import adjust, one_sided_p, t_interval

BASE_POINT = "{}"
SWEEP_COLUMNS = [
    *CONFIG_KEYS, "metric", "n", "mean_point", "mean_base", "diff", "diff_low", "diff_high", "margin",
    "noninferior_p", "noninferior_p_adj", "noninferior",
]
_SAME_BUT_SWEEP = [k for k in CONFIG_KEYS if k != "sweep"]


def sweep_contrasts(cells: pd.DataFrame, metrics: dict[str, bool], *, alpha: float, margin_fraction: float,
                    correction: str) -> pd.DataFrame:
    """One row per (configuration at a non-base sweep point, metric): see the module docstring.
    ``metrics`` maps each metric to whether higher is better. Empty when no configuration has both
    the base point and another."""
    rows = []
    for key, g in cells.groupby(_SAME_BUT_SWEEP, dropna=False, sort=True):
        if BASE_POINT not in set(g["sweep"]) or g["sweep"].nunique() < 2:
            continue
        base = g[g["sweep"] == BASE_POINT].set_index("seed")
        for point, p in g[g["sweep"] != BASE_POINT].groupby("sweep", sort=True):
            p = p.set_index("seed")
            seeds = p.index.intersection(base.index)
            for metric, higher in metrics.items():
                at_point, at_base = p.loc[seeds, metric], base.loc[seeds, metric]
                diffs = (at_point - at_base).dropna().to_numpy(dtype=float)
                if diffs.size == 0:
                    continue
                margin = margin_fraction * abs(float(at_base.mean()))
                low, high = t_interval(diffs, alpha=alpha)
                rows.append(dict(zip(_SAME_BUT_SWEEP, key, strict=True)) | {
                    "sweep": point, "metric": metric, "n": int(diffs.size),
                    "mean_point": float(at_point.mean()), "mean_base": float(at_base.mean()),
                    "diff": float(diffs.mean()), "diff_low": low, "diff_high": high, "margin": margin,
                    "noninferior_p": one_sided_p(diffs, -margin, "greater") if higher else
                    one_sided_p(diffs, margin, "less"),
                })
    out = pd.DataFrame(rows, columns=SWEEP_COLUMNS[:-2])
    out["noninferior_p_adj"] = out.groupby("metric")["noninferior_p"].transform(lambda p: adjust(p, correction))
    out["noninferior"] = out["noninferior_p_adj"] < alpha
    return out
