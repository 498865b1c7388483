"""Trivial rows (no model): each configuration's margin over them, and where it fails to beat one.

A trivial cell is deterministic (one cell, seed 0, per scope), so it has no seed interval and is
never the reference of a paired test: a configuration's margin over it is the configuration's
mean over seeds minus the trivial value, with the configuration's own Student-t interval shifted
by that constant.
"""

from __future__ import annotations

import pandas as pd

from bench.report.configs import CONFIG_KEYS, COPY_SOURCE, SCOPE_KEYS, TRIVIAL_ARMS, is_trivial
from bench.report.stats import t_interval
from diffuseq.metrics.registry import METRICS, metrics


def higher_is_better() -> list[str]:
    """The metrics where higher is better (the registry says so): a model must beat a trivial row on them."""
    return [m for m in metrics() if METRICS[m].higher_is_better]


MARGIN_COLUMNS = [
    *CONFIG_KEYS, "trivial", "metric", "n", "mean", "trivial_value", "margin", "margin_low", "margin_high",
    "outcome",
]
# outcome: "beats" (the interval lies above the trivial value), "fails" (mean at or below it),
# "unclear" (mean above, interval reaching it; or one seed).
BEATS, FAILS, UNCLEAR = "beats", "fails", "unclear"
NO_TRIVIAL = ("the table has no `copy_source` or `nearest_train_target` cell, so no arm's margin over doing "
              "nothing can be stated.")


def trivial_values(cells: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per scope and trivial arm: its value of each metric (long form)."""
    trivial = cells[is_trivial(cells)]
    shown = [m for m in metrics if m in trivial]
    long = trivial.melt(id_vars=[*SCOPE_KEYS, "arm"], value_vars=shown, var_name="metric", value_name="trivial_value")
    return long.dropna(subset=["trivial_value"]).rename(columns={"arm": "trivial"})


def margins(cells: pd.DataFrame, metrics: list[str], *, alpha: float) -> pd.DataFrame:
    """Per model configuration, trivial arm and higher-is-better metric: mean over seeds, the
    trivial value, the margin (mean − trivial) with its t interval, and the outcome."""
    shown = [m for m in higher_is_better() if m in metrics]
    values = trivial_values(cells, shown)
    models = cells[~is_trivial(cells)]
    if values.empty or models.empty:
        return pd.DataFrame(columns=MARGIN_COLUMNS)
    long = models.melt(id_vars=[*CONFIG_KEYS, "seed"], value_vars=shown, var_name="metric").dropna(subset=["value"])
    rows = []
    for key, g in long.groupby([*CONFIG_KEYS, "metric"], dropna=False, sort=False):
        low, high = t_interval(g["value"], alpha=alpha)
        rows.append(dict(zip([*CONFIG_KEYS, "metric"], key, strict=True))
                    | {"n": len(g), "mean": g["value"].mean(), "low": low, "high": high})
    stats = pd.DataFrame(rows)
    out = stats.merge(values, on=[*SCOPE_KEYS, "metric"])
    out["margin"] = out["mean"] - out["trivial_value"]
    out["margin_low"] = out["low"] - out["trivial_value"]
    out["margin_high"] = out["high"] - out["trivial_value"]
    out["outcome"] = [
        FAILS if m <= 0 else BEATS if low > 0 else UNCLEAR
        for m, low in zip(out["margin"], out["margin_low"].fillna(0.0), strict=True)
    ]
    order = {t: i for i, t in enumerate(TRIVIAL_ARMS)}
    out = out.assign(_t=out["trivial"].map(order).fillna(len(order))).sort_values("_t", kind="stable")
    return out[MARGIN_COLUMNS].reset_index(drop=True)


def copy_source_margin(margins_: pd.DataFrame, config: dict, metric: str = "bleu") -> pd.Series | None:
    """The margin of one configuration over copy_source on ``metric``, else None."""
    if margins_.empty:
        return None
    keys = {k: config[k] for k in CONFIG_KEYS} | {"trivial": COPY_SOURCE, "metric": metric}
    rows = margins_.merge(pd.DataFrame([keys]), on=list(keys))
    return rows.iloc[0] if len(rows) else None
