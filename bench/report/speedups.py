"""Speedups: training steps/wall time to reach a BLEU level, and sampling throughput."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from bench.report.configs import (
    ARM_SEPARATOR,
    CONFIG_KEYS,
    CURVE_KEYS,
    MODEL_KEYS,
    NO_SWEEP,
    SCOPE_KEYS,
    has_arm,
    is_reference,
)
from bench.report.load import ResultsError


def first_crossing(steps: ArrayLike, wall: ArrayLike, values: ArrayLike, level: float) -> tuple[float, float]:
    """Step and wall time at which a curve first reaches ``level``; NaN if it never does.

    Linear interpolation between the last evaluation below the level and the first at or above
    it (wall time interpolated at the same fraction). A curve already at the level at its first
    evaluation returns that evaluation (an upper bound).
    """
    steps, wall, values = (np.asarray(x, dtype=float) for x in (steps, wall, values))
    above = np.flatnonzero(values >= level)
    if above.size == 0:
        return np.nan, np.nan
    i = above[0]
    if i == 0:
        return steps[0], wall[0]
    f = (level - values[i - 1]) / (values[i] - values[i - 1])
    return steps[i - 1] + f * (steps[i] - steps[i - 1]), wall[i - 1] + f * (wall[i] - wall[i - 1])


def model_curves(curves: pd.DataFrame, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validation-BLEU curves, one per trained model (train_key) and seed, sorted by step.

    The runner writes a model's curve once for every arm that uses it; those copies become one
    curve whose ``arms`` names all of them (``absorb_train_only / v2``). Its ``sweep`` point comes
    from the table's cells of the same train_key ("{}" for a model without cells). Already
    merged curves (with an ``arms`` column) are returned as they are.
    """
    if "arms" in curves:
        return curves
    bleu = curves[curves["metric"] == "bleu"]
    arms = bleu.groupby("train_key")["arm"].agg(lambda a: ARM_SEPARATOR.join(sorted(set(a))))
    sweeps: dict[str, str] = {}
    if cells is not None and "sweep" in cells:
        known = cells.dropna(subset=["sweep"]).sort_values("sweep").drop_duplicates("train_key")
        sweeps = dict(zip(known["train_key"], known["sweep"], strict=True))
    models = (
        bleu.drop_duplicates(["train_key", "step"])
        .drop(columns="arm")
        .assign(arms=lambda f: f["train_key"].map(arms),
                sweep=lambda f: [sweeps.get(k, NO_SWEEP) for k in f["train_key"]])
    )
    runs = models.drop_duplicates("train_key")
    clash = runs[runs.duplicated([*MODEL_KEYS, "seed"], keep=False)]
    if len(clash):
        raise ResultsError(
            "curves.parquet: several models (train_keys "
            f"{sorted(clash['train_key'])}) for one arm, γ, sweep point and seed; the table has no cells "
            "telling their sweep points apart"
        )
    return models.sort_values([*CURVE_KEYS, "step"]).reset_index(drop=True)


def baseline_models(models: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scope, the ``MODEL_KEYS`` of the baseline's model that levels and speedups refer to:
    with several (γ, sweep point), no sweep first, then the first sweep point and γ by value."""
    own = models.loc[has_arm(models["arms"], baseline), MODEL_KEYS].drop_duplicates()
    ranked = own.assign(_swept=own["sweep"].ne(NO_SWEEP)).sort_values(["_swept", "sweep", "gamma"], kind="stable")
    return ranked.drop_duplicates(SCOPE_KEYS)[MODEL_KEYS].reset_index(drop=True)


def _is_baseline(frame: pd.DataFrame, baseline: str) -> pd.Series:
    """Rows of ``frame`` (holding MODEL_KEYS) that belong to the baseline model of their scope."""
    marked = frame[MODEL_KEYS].merge(baseline_models(frame, baseline).assign(_base=True), on=MODEL_KEYS, how="left")
    return pd.Series(marked["_base"].eq(True).to_numpy(), index=frame.index)


def bleu_levels(
    curves: pd.DataFrame, *, baseline: str, fraction: float, absolute: float | None = None
) -> pd.DataFrame:
    """The BLEU level per scope: ``absolute`` if given, else ``fraction`` × the baseline model's
    final validation BLEU averaged over its seeds. Scopes without a baseline curve get no level then."""
    bleu = model_curves(curves)
    final = bleu.groupby(CURVE_KEYS, dropna=False).tail(1)
    base = final[_is_baseline(final, baseline)].groupby(SCOPE_KEYS)["value"].agg(
        baseline_final="mean", baseline_seeds="size")
    if absolute is None:
        return base.assign(level=fraction * base["baseline_final"]).reset_index()
    scopes = bleu[SCOPE_KEYS].drop_duplicates().merge(base.reset_index(), on=SCOPE_KEYS, how="left")
    return scopes.assign(level=float(absolute))


def convergence(curves: pd.DataFrame, levels: pd.DataFrame, *, baseline: str) -> pd.DataFrame:
    """Per curve (model, seed): step and wall time to the level, and the speedups over the
    baseline model's curve of the same seed (baseline / model; > 1 means the model is faster).
    Arms sharing a model share one row (``arms``); ``baseline`` marks the baseline model's rows.
    A run that never reaches the level keeps its row, with ``reached`` False and NaN times."""
    rows = []
    for key, g in model_curves(curves).merge(levels[[*SCOPE_KEYS, "level"]], on=SCOPE_KEYS).groupby(
        CURVE_KEYS, dropna=False, sort=False
    ):
        step, wall = first_crossing(g["step"], g["wall_s"], g["value"], g["level"].iloc[0])
        rows.append(dict(zip(CURVE_KEYS, key, strict=True)) | {
            "level": g["level"].iloc[0], "reached": not np.isnan(step), "steps_to_level": step,
            "wall_to_level": wall, "best_bleu": g["value"].max(), "last_step": g["step"].iloc[-1],
        })
    runs = pd.DataFrame(rows, columns=[*CURVE_KEYS, "level", "reached", "steps_to_level", "wall_to_level",
                                       "best_bleu", "last_step"])
    runs.insert(len(CURVE_KEYS), "baseline", _is_baseline(runs, baseline))
    base = runs.loc[runs["baseline"], [*SCOPE_KEYS, "seed", "steps_to_level", "wall_to_level"]]
    runs = runs.merge(base, on=[*SCOPE_KEYS, "seed"], how="left", suffixes=("", "_baseline"))
    return runs.assign(
        speedup_steps=runs["steps_to_level_baseline"] / runs["steps_to_level"],
        speedup_wall=runs["wall_to_level_baseline"] / runs["wall_to_level"],
    )


def geometric_mean_ci(ratios: ArrayLike, *, alpha: float) -> tuple[int, float, float, float]:
    """n finite ratios, their geometric mean and Student-t CI computed on log ratios."""
    logs = np.log(np.asarray(ratios, dtype=float))
    logs = logs[np.isfinite(logs)]
    if logs.size == 0:
        return 0, np.nan, np.nan, np.nan
    mean = logs.mean()
    if logs.size < 2 or np.ptp(logs) == 0:
        bound = np.exp(mean) if logs.size > 1 else np.nan
        return logs.size, float(np.exp(mean)), bound, bound
    low, high = stats.t.interval(1 - alpha, logs.size - 1, loc=mean, scale=stats.sem(logs))
    return logs.size, float(np.exp(mean)), float(np.exp(low)), float(np.exp(high))


def convergence_summary(runs: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Per model (scope, arms, γ, sweep point) over seeds: seeds reached, mean steps/wall to the
    level among those that reached it, and geometric-mean speedups with t intervals over the seeds
    where both runs did. Arms sharing a model share one row."""
    rows = []
    for key, g in runs.groupby(MODEL_KEYS, dropna=False, sort=False):
        n_pairs, steps, steps_low, steps_high = geometric_mean_ci(g["speedup_steps"], alpha=alpha)
        _, wall, wall_low, wall_high = geometric_mean_ci(g["speedup_wall"], alpha=alpha)
        rows.append(dict(zip(MODEL_KEYS, key, strict=True)) | {
            "baseline": bool(g["baseline"].all()), "level": g["level"].iloc[0], "n_seeds": len(g), "n_reached": int(g["reached"].sum()),
            "steps_to_level": g["steps_to_level"].mean(), "wall_to_level": g["wall_to_level"].mean(),
            "n_pairs": n_pairs, "speedup_steps": steps, "speedup_steps_low": steps_low,
            "speedup_steps_high": steps_high, "speedup_wall": wall, "speedup_wall_low": wall_low,
            "speedup_wall_high": wall_high,
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


SUMMARY_COLUMNS = [
    *MODEL_KEYS, "baseline", "level", "n_seeds", "n_reached", "steps_to_level", "wall_to_level", "n_pairs",
    "speedup_steps", "speedup_steps_low", "speedup_steps_high", "speedup_wall", "speedup_wall_low",
    "speedup_wall_high",
]


def sampling_speedups(cells: pd.DataFrame, summary: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: throughput, its speedup over the scope's reference, and quality.

    ``sentences_per_s`` counts sampled sequences; an MBR-n configuration delivers
    ``sentences_per_s / n`` outputs per second. ``speedup`` compares sampled sequences per second
    with the reference's (DDPM with the most steps); ``speedup_mbr`` compares outputs per second,
    charging the reference for its MBR-n candidates (how the paper counts its ~800x).
    """
    speed = cells.groupby(CONFIG_KEYS, dropna=False, sort=False)["sentences_per_s"].agg(
        n="count", sentences_per_s="mean", sentences_per_s_std="std"
    ).reset_index()
    speed["outputs_per_s"] = speed["sentences_per_s"] / speed["mbr"]
    ref = speed[is_reference(speed, references)][[*SCOPE_KEYS, "sentences_per_s", "outputs_per_s", "mbr"]]
    speed = speed.merge(ref, on=SCOPE_KEYS, how="left", suffixes=("", "_ref"))
    speed["speedup"] = speed["sentences_per_s"] / speed["sentences_per_s_ref"]
    speed["speedup_mbr"] = speed["outputs_per_s"] / speed["outputs_per_s_ref"]
    quality = (
        summary[summary["metric"].isin(["bleu", "bertscore_f1"])]
        .set_index([*CONFIG_KEYS, "metric"])[["mean", "ci_low", "ci_high"]]
        .unstack("metric")
    )
    quality.columns = [f"{metric}_{stat}" for stat, metric in quality.columns]
    return speed.merge(quality.reset_index(), on=CONFIG_KEYS, how="left")
