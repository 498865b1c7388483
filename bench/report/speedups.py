"""Training convergence: steps, examples seen, calibrated and raw seconds to reach a BLEU level."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from bench.report.configs import (
    ARM_SEPARATOR,
    CURVE_KEYS,
    MODEL_KEYS,
    NO_SWEEP,
    PAPER_GAMMA,
    SCOPE_KEYS,
    has_arm,
)
from bench.report.load import ResultsError


def _crossing(values: np.ndarray, level: float) -> tuple[int, float] | None:
    """(i, f): the curve first reaches ``level`` a fraction f of the way from evaluation i − 1 to
    i (f = 1 at i, and i = 0 with f = 1 for a curve at the level from its first evaluation)."""
    above = np.flatnonzero(values >= level)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return 0, 1.0
    return i, float((level - values[i - 1]) / (values[i] - values[i - 1]))


def _at(x: np.ndarray, crossing: tuple[int, float] | None) -> float:
    if crossing is None:
        return np.nan
    i, f = crossing
    return float(x[0]) if i == 0 else float(x[i - 1] + f * (x[i] - x[i - 1]))


def first_crossing(steps: ArrayLike, wall: ArrayLike, values: ArrayLike, level: float) -> tuple[float, float]:
    """Step and wall time at which a curve first reaches ``level``; NaN if it never does.

    Linear interpolation between the last evaluation below the level and the first at or above
    it (wall time interpolated at the same fraction). A curve already at the level at its first
    evaluation returns that evaluation (an upper bound).
    """
    steps, wall, values = (np.asarray(x, dtype=float) for x in (steps, wall, values))
    crossing = _crossing(values, level)
    return _at(steps, crossing), _at(wall, crossing)


def model_curves(curves: pd.DataFrame, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Own-decoder validation-BLEU curves, one per trained model (train_key), decoder and seed,
    sorted by step.

    Only rows whose decoder is the arm's own decoding family (``own_decoder``) enter: a model's
    extra curves (e.g. the old shared DPM-Solver++ decoder) never set a level or a speedup. The
    runner writes a curve once for every arm; arms of one model with the same own decoder become
    one curve whose ``arms`` names all of them (``absorb_train_only / v2``), arms with different
    decoders stay apart. Already merged curves (with an ``arms`` column) are returned as they are.
    """
    if "arms" in curves:
        return curves
    bleu = curves[(curves["metric"] == "bleu") & curves["own_decoder"]]
    arms = bleu.groupby(["train_key", "decoder"])["arm"].agg(lambda a: ARM_SEPARATOR.join(sorted(set(a))))
    models = bleu.drop_duplicates(["train_key", "decoder", "step"]).drop(columns="arm")
    models = models.assign(arms=[arms[k] for k in zip(models["train_key"], models["decoder"], strict=True)])
    runs = models.drop_duplicates(["train_key", "decoder"])
    clash = runs[runs.duplicated([*MODEL_KEYS, "seed"], keep=False)]
    if len(clash):
        raise ResultsError(
            "curves.parquet: several models (train_keys "
            f"{sorted(clash['train_key'])}) for one arm, γ, sweep point, decoder and seed; nothing in the "
            "results tells their sweep points apart"
        )
    return models.sort_values([*CURVE_KEYS, "step"]).reset_index(drop=True)


def extra_curves(curves: pd.DataFrame | None) -> pd.DataFrame:
    """The BLEU curves that are not their arm's own decoder (listed, never used for speedups):
    one row per scope, arm and decoder, with the number of seeds."""
    columns = [*SCOPE_KEYS, "arm", "decoder", "n_seeds"]
    if curves is None or not len(curves):
        return pd.DataFrame(columns=columns)
    extra = curves[(curves["metric"] == "bleu") & ~curves["own_decoder"].astype(bool)]
    return (extra.groupby([*SCOPE_KEYS, "arm", "decoder"])["seed"].nunique().rename("n_seeds")
            .reset_index()[columns])


def final_points(models: pd.DataFrame) -> pd.DataFrame:
    """The last point of every own-decoder curve: one row per curve and seed (``CURVE_KEYS``), with
    its ``step`` and BLEU ``value``."""
    if not len(models):
        return pd.DataFrame(columns=[*CURVE_KEYS, "step", "value"])
    return models.groupby(CURVE_KEYS, dropna=False, sort=False).tail(1)[[*CURVE_KEYS, "step", "value"]]


def own_decoders(models: pd.DataFrame) -> pd.DataFrame:
    """Per scope and arm, the decoder of its own curve."""
    if not len(models):
        return pd.DataFrame(columns=[*SCOPE_KEYS, "arm", "decoder"])
    per_arm = models.assign(arm=models["arms"].str.split(ARM_SEPARATOR)).explode("arm")
    return per_arm[[*SCOPE_KEYS, "arm", "decoder"]].drop_duplicates().reset_index(drop=True)


def baseline_models(models: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per scope, the ``MODEL_KEYS`` of the baseline's curve that levels and speedups refer to:
    with several (γ, sweep point), no sweep first, then the first sweep point and γ by value."""
    own = models.loc[has_arm(models["arms"], baseline), MODEL_KEYS].drop_duplicates()
    ranked = own.assign(_swept=own["sweep"].ne(NO_SWEEP)).sort_values(["_swept", "sweep", "gamma"], kind="stable")
    return ranked.drop_duplicates(SCOPE_KEYS)[MODEL_KEYS].reset_index(drop=True)


def _is_baseline(frame: pd.DataFrame, baseline: str) -> pd.Series:
    """Rows of ``frame`` (holding MODEL_KEYS) that belong to the baseline model of their scope."""
    marked = frame[MODEL_KEYS].merge(baseline_models(frame, baseline).assign(_base=True), on=MODEL_KEYS, how="left")
    return pd.Series(marked["_base"].eq(True).to_numpy(), index=frame.index)


def bleu_levels(
    curves: pd.DataFrame, *, baseline: str, fraction: float, absolute: float | None = None, arm: str | None = None
) -> pd.DataFrame:
    """The BLEU level per scope: ``absolute`` if given, else ``fraction`` × the weakest final
    own-decoder validation BLEU among the seeds of the baseline's curve and of ``arm``'s (the arm
    the claim compares with it; its model at γ nearest the paper's, unswept where there is one), so
    that both reach the level on every seed. Scopes without a baseline curve get no level then."""
    bleu = model_curves(curves)
    final = bleu.groupby(CURVE_KEYS, dropna=False).tail(1)
    base = _is_baseline(final, baseline)
    compared = (base | _headline_model(final, arm)) if arm else base
    with_base = final[SCOPE_KEYS].merge(final.loc[base, SCOPE_KEYS].drop_duplicates(), how="left", indicator=True)
    compared = compared & pd.Series(with_base["_merge"].eq("both").to_numpy(), index=final.index)
    levels = final[compared].groupby(SCOPE_KEYS)["value"].agg(weakest_final="min", weakest_runs="size")
    if absolute is None:
        return levels.assign(level=fraction * levels["weakest_final"]).reset_index()
    scopes = bleu[SCOPE_KEYS].drop_duplicates().merge(levels.reset_index(), on=SCOPE_KEYS, how="left")
    return scopes.assign(level=float(absolute))


def _headline_model(final: pd.DataFrame, arm: str) -> pd.Series:
    """Rows of ``arm``'s curves from one model per scope: unswept where possible, γ nearest the paper's."""
    own = final[has_arm(final["arms"], arm)]
    ranked = own.assign(_swept=own["sweep"].ne(NO_SWEEP), _off=(own["gamma"] - PAPER_GAMMA).abs())
    pick = ranked.sort_values(["_swept", "_off", "gamma"], kind="stable").drop_duplicates(SCOPE_KEYS)
    keys = pick[MODEL_KEYS].assign(_pick=True)
    marked = final[MODEL_KEYS].merge(keys, on=MODEL_KEYS, how="left")
    return pd.Series(marked["_pick"].eq(True).to_numpy(), index=final.index)


def _costs_per_curve(runs: pd.DataFrame, costs: pd.DataFrame | None) -> pd.DataFrame:
    """The timed seconds per optimizer step of each run's model (any of its arms), NaN untimed."""
    keys = [*SCOPE_KEYS, "gamma", "sweep"]
    if costs is None or not len(costs):
        return runs.assign(train_step_s=np.nan, timing_device=None)
    per_arm = runs[[*MODEL_KEYS]].drop_duplicates()
    per_arm = per_arm.assign(arm=per_arm["arms"].str.split(ARM_SEPARATOR)).explode("arm")
    matched = per_arm.merge(costs[[*keys, "arm", "train_step_s", "device"]], on=[*keys, "arm"])
    matched = matched.drop_duplicates(MODEL_KEYS)[[*MODEL_KEYS, "train_step_s", "device"]]
    return runs.merge(matched.rename(columns={"device": "timing_device"}), on=MODEL_KEYS, how="left")


def calibrated_curves(models: pd.DataFrame, costs: pd.DataFrame | None) -> pd.DataFrame:
    """Own-decoder curves with ``calibrated_s`` = step × the model's timed seconds per optimizer
    step (NaN for models the timing pass did not time)."""
    if not len(models):
        return models
    timed = _costs_per_curve(models, costs)
    return timed.assign(calibrated_s=timed["step"] * timed["train_step_s"]).drop(
        columns=["train_step_s", "timing_device"])


RUN_COLUMNS = [
    "level", "reached", "steps_to_level", "examples_to_level", "wall_to_level", "best_bleu", "last_step",
    "final_bleu",
]


def convergence(
    curves: pd.DataFrame, levels: pd.DataFrame, *, baseline: str, costs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per own-decoder curve (model, decoder, seed): steps, training examples, raw wall time and
    calibrated seconds (steps × the model's timed seconds per step) to the level, and the speedups
    over the baseline's curve of the same seed (baseline / model; > 1 means the model is faster).
    The raw wall-time speedup needs both models trained on one known device (``train_device``,
    from :func:`training_devices`): NaN otherwise, as a GPU-trained model against a CPU-trained one.
    Arms sharing a curve share one row (``arms``); ``baseline`` marks the baseline's rows. A run
    that never reaches the level keeps its row, with ``reached`` False and NaN times."""
    rows = []
    for key, g in model_curves(curves).merge(levels[[*SCOPE_KEYS, "level"]], on=SCOPE_KEYS).groupby(
        CURVE_KEYS, dropna=False, sort=False
    ):
        crossing = _crossing(g["value"].to_numpy(dtype=float), g["level"].iloc[0])
        rows.append(dict(zip(CURVE_KEYS, key, strict=True)) | {
            "level": g["level"].iloc[0], "reached": crossing is not None,
            "steps_to_level": _at(g["step"].to_numpy(dtype=float), crossing),
            "examples_to_level": _at(g["examples"].to_numpy(dtype=float), crossing),
            "wall_to_level": _at(g["wall_s"].to_numpy(dtype=float), crossing),
            "best_bleu": g["value"].max(), "last_step": g["step"].iloc[-1], "final_bleu": g["value"].iloc[-1],
        })
    runs = pd.DataFrame(rows, columns=[*CURVE_KEYS, *RUN_COLUMNS])
    runs.insert(len(CURVE_KEYS), "baseline", _is_baseline(runs, baseline))
    trained_on = curves.drop_duplicates("train_key").set_index("train_key").get("train_device")
    runs["train_device"] = runs["train_key"].map(trained_on) if trained_on is not None else None
    runs = _costs_per_curve(runs, costs)
    runs["calibrated_to_level"] = runs["steps_to_level"] * runs["train_step_s"]
    measures = ["steps_to_level", "examples_to_level", "wall_to_level", "calibrated_to_level"]
    base = runs.loc[runs["baseline"], [*SCOPE_KEYS, "seed", *measures, "timing_device", "train_device"]]
    runs = runs.merge(base, on=[*SCOPE_KEYS, "seed"], how="left", suffixes=("", "_baseline"))
    same_device = runs["timing_device"].eq(runs["timing_device_baseline"])
    trained_alike = runs["train_device"].notna() & runs["train_device"].eq(runs["train_device_baseline"])
    return runs.drop(columns=["timing_device_baseline", "train_device", "train_device_baseline"]).assign(
        speedup_steps=runs["steps_to_level_baseline"] / runs["steps_to_level"],
        speedup_examples=runs["examples_to_level_baseline"] / runs["examples_to_level"],
        speedup_wall=(runs["wall_to_level_baseline"] / runs["wall_to_level"]).where(trained_alike),
        speedup_calibrated=(runs["calibrated_to_level_baseline"] / runs["calibrated_to_level"]).where(same_device),
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


SPEEDUPS = ("steps", "examples", "calibrated", "wall")


def convergence_summary(runs: pd.DataFrame, *, alpha: float) -> pd.DataFrame:
    """Per curve (scope, arms, γ, sweep point, decoder) over seeds: seeds reached, mean steps,
    examples, calibrated seconds and raw wall time to the level among those that reached it, and
    geometric-mean speedups with t intervals over the seeds where both runs did."""
    rows = []
    for key, g in runs.groupby(MODEL_KEYS, dropna=False, sort=False):
        row = dict(zip(MODEL_KEYS, key, strict=True)) | {
            "baseline": bool(g["baseline"].all()), "level": g["level"].iloc[0], "n_seeds": len(g),
            "n_reached": int(g["reached"].sum()), "steps_to_level": g["steps_to_level"].mean(),
            "examples_to_level": g["examples_to_level"].mean(), "wall_to_level": g["wall_to_level"].mean(),
            "calibrated_to_level": g["calibrated_to_level"].mean(), "train_step_s": g["train_step_s"].iloc[0],
            "final_bleu": g["final_bleu"].mean(),
        }
        for measure in SPEEDUPS:
            n, mean, low, high = geometric_mean_ci(g[f"speedup_{measure}"], alpha=alpha)
            row |= {f"speedup_{measure}": mean, f"speedup_{measure}_low": low, f"speedup_{measure}_high": high}
            if measure == "steps":
                row["n_pairs"] = n
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


SUMMARY_COLUMNS = [
    *MODEL_KEYS, "baseline", "level", "n_seeds", "n_reached", "steps_to_level", "examples_to_level",
    "wall_to_level", "calibrated_to_level", "train_step_s", "final_bleu", "n_pairs",
    *(f"speedup_{m}{s}" for m in SPEEDUPS for s in ("", "_low", "_high")),
]


def training_devices(cells: pd.DataFrame) -> pd.Series:
    """The device each model (``train_key``) was trained on: its cells' decode device, since a worker
    trains and decodes a model in one process; missing (NaN) where its cells name several devices."""
    models = cells.dropna(subset=["train_key"]).groupby("train_key")["device"]
    return models.agg(lambda d: d.iloc[0] if d.nunique() == 1 else None).rename("train_device")
