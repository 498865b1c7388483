"""Intervals, paired tests and multiple-comparison corrections (scipy.stats where it has them).

Every function handles the degenerate cases a small suite produces (one seed, identical arms)
by returning NaN with a reason instead of raising or warning.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from bench.report.options import CORRECTIONS

_RESAMPLE_BUDGET = 1 << 22  # entries of one resample-index block (32 MiB of int64)


def _nearly_constant(x: np.ndarray) -> bool:
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def bootstrap_ci(values: ArrayLike, *, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean (``scipy.stats.bootstrap``); NaN for fewer than 2 values.

    Percentile rather than BCa: BCa's jackknife acceleration is unstable for the 3-5 seeds a suite
    usually has. Like every bootstrap it is narrow for small n (about 75% coverage at n = 3).
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return np.nan, np.nan
    if _nearly_constant(x):
        return float(x[0]), float(x[0])
    ci = stats.bootstrap(
        (x,), np.mean, n_resamples=n_boot, confidence_level=1 - alpha,
        method="percentile", vectorized=True, rng=seed,
    ).confidence_interval
    return float(ci.low), float(ci.high)


def t_interval(values: ArrayLike, *, alpha: float) -> tuple[float, float]:
    """Student-t CI of the mean; NaN for fewer than 2 values, a point for constant values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return np.nan, np.nan
    if _nearly_constant(x):
        return float(x[0]), float(x[0])
    low, high = stats.t.interval(1 - alpha, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    return float(low), float(high)


def paired_test(a: ArrayLike, b: ArrayLike, *, alpha: float) -> dict[str, float | int | str]:
    """Paired comparison of A and B on matched seeds, A − B.

    Returns n, mean_a, mean_b, diff (mean difference) with its Student-t CI (diff_low, diff_high),
    d_z (mean / sd of the differences), t_p (``scipy.stats.ttest_rel``), wilcoxon_p
    (``scipy.stats.wilcoxon``, zero differences dropped), both two-sided, and a note saying why a
    test is n/a (fewer than 2 seeds, all differences zero, a constant difference).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    nan = np.nan
    result: dict[str, float | int | str] = {
        "n": d.size, "mean_a": a.mean(), "mean_b": b.mean(), "diff": d.mean(),
        "diff_low": nan, "diff_high": nan, "d_z": nan, "t_p": nan, "wilcoxon_p": nan, "note": "",
    }
    if d.size < 2:
        return result | {"note": f"n = {d.size} < 2 matched seeds"}
    if not d.any():
        return result | {"diff_low": 0.0, "diff_high": 0.0, "note": "all differences are zero"}
    result["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    if _nearly_constant(d):
        return result | {"diff_low": float(d[0]), "diff_high": float(d[0]), "note": "constant difference: t undefined"}
    t = stats.ttest_rel(a, b)
    ci = t.confidence_interval(1 - alpha)
    return result | {"diff_low": float(ci.low), "diff_high": float(ci.high),
                     "d_z": float(d.mean() / d.std(ddof=1)), "t_p": float(t.pvalue)}


def paired_bootstrap(
    a: ArrayLike, b: ArrayLike, *, n_boot: int, alpha: float, seed: int
) -> dict[str, float | int]:
    """Paired bootstrap over test sentences (Koehn 2004) for a per-sentence metric, A − B.

    Resamples sentences with replacement (one index matrix shared by A and B) and returns the
    fraction of resamples where A's mean beats B's, the percentile CI of the mean difference, and a
    two-sided p-value from the shifted bootstrap distribution (null: mean difference 0),
    ``(1 + #{|d*_b − d̄| ≥ |d̄|}) / (n_boot + 1)``.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    rng = np.random.default_rng(seed)
    block = max(1, _RESAMPLE_BUDGET // max(d.size, 1))
    boot = np.concatenate([
        d[rng.integers(0, d.size, size=(min(block, n_boot - start), d.size))].mean(axis=1)
        for start in range(0, n_boot, block)
    ])
    observed = d.mean()
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    extreme = np.abs(boot - observed) >= abs(observed)
    return {
        "n_sentences": d.size,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "diff": float(observed),
        "diff_low": float(low),
        "diff_high": float(high),
        "p_a_better": float((boot > 0).mean()),
        "p": float((1 + extreme.sum()) / (n_boot + 1)),
    }


def holm(p: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    stepped = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def adjust(p: ArrayLike, method: str) -> np.ndarray:
    """Adjust a family of p-values; NaN entries (tests that did not run) stay NaN and don't count.

    ``holm``: Holm 1979 (FWER). ``bh``: Benjamini–Hochberg via ``scipy.stats.false_discovery_control``.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, not {method!r}")
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ran = ~np.isnan(p)
    if ran.any():
        out[ran] = holm(p[ran]) if method == "holm" else stats.false_discovery_control(p[ran], method="bh")
    return out


def one_sided_p(values: ArrayLike, threshold: float, alternative: str) -> float:
    """One-sample t-test that the mean of ``values`` is above (``greater``) or below (``less``)
    ``threshold``. NaN for fewer than 2 values; for values without spread (a t of ±∞) 0 when
    they lie on the alternative's side, 1 otherwise."""
    x = np.asarray(values, dtype=float) - threshold
    x = x[np.isfinite(x)]
    if x.size < 2:
        return np.nan
    if _nearly_constant(x):
        side = x.mean() > 0 if alternative == "greater" else x.mean() < 0
        return 0.0 if side and x.mean() != 0 else 1.0
    return float(stats.ttest_1samp(x, 0.0, alternative=alternative).pvalue)


def seeds_needed(mean: float, sd: float, threshold: float, *, alpha: float, power: float = 0.8) -> float:
    """Seeds a one-sided test at level ``alpha`` needs to tell a mean of ``mean`` from
    ``threshold`` with probability ``power``, if the spread is ``sd`` (normal approximation):
    n = ⌈((z₁₋α + z_power) · sd / |mean − threshold|)²⌉, at least 2. NaN without a spread
    estimate, infinity when the mean sits on the threshold."""
    if not (np.isfinite(mean) and np.isfinite(sd)):
        return np.nan
    gap = abs(mean - threshold)
    if gap == 0:
        return np.inf
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return float(max(2, np.ceil((z * sd / gap) ** 2)))
