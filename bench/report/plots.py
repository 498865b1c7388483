"""Figures mirroring the papers' Figs. 2-4 plus per-dataset bars; each PNG has its data as CSV beside it.

Figures are drawn on ``matplotlib.figure.Figure`` objects (rendered by the Agg canvas), never
through pyplot, so no global backend state is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report.configs import (
    CONFIG_KEYS,
    MODEL_KEYS,
    SCOPE_KEYS,
    config_labels,
    custom_label,
    sweep_text,
    sweep_without_gamma,
)
from bench.report.speedups import model_curves


@dataclass(frozen=True)
class Plot:
    """A figure written to disk, or the reason it was skipped (then ``png`` is None)."""

    title: str
    png: Path | None = None
    csv: Path | None = None
    skipped: str = ""


def _save(fig: Figure, data: pd.DataFrame, out_dir: Path, name: str, title: str) -> Plot:
    png, csv = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    data.to_csv(csv, index=False)
    return Plot(title, png, csv)


def _scopes(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(file-name-safe suffix, rows) per scope; the suffix names only the keys that vary."""
    varying = [k for k in SCOPE_KEYS if frame[k].nunique() > 1] or ["dataset"]
    return [
        (re.sub(r"[^\w.-]+", "-", "_".join(map(str, key))).strip("-"), g)
        for key, g in frame.groupby(varying, sort=True)
    ]


def _model_labels(models: pd.DataFrame) -> pd.DataFrame:
    """One line per own-decoder curve: arms sharing a trained model and a decoder are drawn once,
    named together with the decoder in brackets; γ is appended where those arms have several,
    the sweep point where there are several."""
    several = models.groupby("arms")["gamma"].transform(lambda g: g.nunique(dropna=False)) > 1
    gamma = models["gamma"].map(lambda g: f" γ={g:g}")
    sweeps = models["sweep"].map(sweep_text)
    swept = models.groupby("arms")["sweep"].transform("nunique") > 1
    decoder = models["decoder"].fillna("") if "decoder" in models else pd.Series("", index=models.index)
    label = (models["arms"] + (" [" + decoder + "]").where(decoder.ne(""), "") + gamma.where(several, "")
             + (" (" + sweeps + ")").where(swept & sweeps.ne(""), ""))
    return models.assign(label=label)


def _seed_bands(models: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean, min and max over seeds at each evaluation step (and the mean examples seen, raw wall
    time and calibrated seconds there, where the curves have them)."""
    extra = {c: (c, "mean") for c in ("examples", "wall_s", "calibrated_s") if c in models}
    return (
        models.groupby([*by, "step"], dropna=False)
        .agg(n_seeds=("seed", "nunique"), **extra, bleu_mean=("value", "mean"),
             bleu_min=("value", "min"), bleu_max=("value", "max"))
        .reset_index()
    )


def _band(ax, x: pd.Series, g: pd.DataFrame, label: str) -> None:
    line, = ax.plot(x, g["bleu_mean"], marker=".", label=label)
    ax.fill_between(x, g["bleu_min"], g["bleu_max"], color=line.get_color(), alpha=0.2, linewidth=0)


_NO_CURVES = "no own-decoder validation-BLEU curves (curves.parquet absent or without `bleu`)."


def _has_bleu(curves: pd.DataFrame | None) -> bool:
    if curves is None or not len(curves):
        return False
    if "arms" in curves:
        return True
    own = curves["own_decoder"].fillna(True).astype(bool) if "own_decoder" in curves else True
    return bool(((curves["metric"] == "bleu") & own).any())


_AXES = {
    "step": "training step",
    "examples": "training examples seen",
    "calibrated_s": "calibrated training seconds (steps × timed s/step)",
}


def training_curves(curves: pd.DataFrame | None, levels: pd.DataFrame, out_dir: Path) -> list[Plot]:
    """Fig. 2: own-decoder validation BLEU vs training steps, examples seen and calibrated seconds
    (where known: examples need curves.parquet's ``examples``, seconds the timing pass), per curve,
    the seed range as a band. Never against raw wall time: runs that trained at different moments
    on a shared machine are not comparable by it.

    ``curves``: curves.parquet, or its curves merged per model (``speedups.model_curves``, which
    also knows each model's sweep point from the table)."""
    title = "Fig. 2: validation BLEU (own decoder) vs training steps, examples seen and calibrated seconds"
    if not _has_bleu(curves):
        return [Plot(title, skipped=_NO_CURVES)]
    plots = []
    for suffix, rows in _scopes(_model_labels(model_curves(curves))):
        data = _seed_bands(rows, [*MODEL_KEYS, "label"])
        axes = [x for x in _AXES if x in data and data[x].notna().any()]
        fig = Figure(figsize=(4 + 3.5 * len(axes), 4))
        panels = np.atleast_1d(fig.subplots(1, len(axes), sharey=True))
        level = levels.merge(rows[SCOPE_KEYS].drop_duplicates(), on=SCOPE_KEYS)["level"] if len(levels) else []
        for ax, x in zip(panels, axes, strict=True):
            for label, g in data.groupby("label"):
                _band(ax, g[x], g, label)
            if len(level):
                ax.axhline(level.iloc[0], color="grey", linestyle="--", linewidth=1, label="BLEU level")
            ax.grid(alpha=0.3)
            ax.set(xlabel=_AXES[x], title=f"{suffix}: by {_AXES[x].split(' (')[0]}")
        panels[0].set(ylabel="validation BLEU")
        panels[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the panels, hiding no curve
        plots.append(_save(fig, data, out_dir, f"fig2_training_{suffix}", f"{title} ({suffix})"))
    return plots


def speed_quality(sampling: pd.DataFrame, out_dir: Path) -> list[Plot]:
    """Fig. 3: BLEU vs outputs per second from the timing pass (log x), one line per (arm,
    sampler, MBR) across step counts."""
    title = "Fig. 3: BLEU vs sampling speed (timing pass)"
    if sampling.empty or "bleu_mean" not in sampling or sampling["outputs_per_s"].isna().all():
        return [Plot(title, skipped="no timing pass (timing.parquet) with BLEU for its configurations.")]
    plots = []
    for suffix, rows in _scopes(sampling.dropna(subset=["outputs_per_s", "bleu_mean"])):
        rows = rows.assign(config=config_labels(rows)).sort_values("steps")
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        rows = rows.assign(variant=custom_label(rows), point=rows["sweep"].map(sweep_text))
        lines = rows.groupby(["arm", "sampler", "variant", "mbr", "gamma", "point"], dropna=False)
        for (arm, sampler, variant, mbr, gamma, point), g in lines:
            err = np.abs(g[["bleu_ci_low", "bleu_ci_high"]].to_numpy().T - g["bleu_mean"].to_numpy())
            name = f"{arm} {sampler}" + (f" [{variant}]" if variant else "") + (f" MBR-{mbr}" if mbr > 1 else "") + (
                f" γ={gamma:g}" if rows.loc[rows["arm"] == arm, "gamma"].nunique() > 1 else "") + (
                f" ({point})" if point else "")
            ax.errorbar(g["outputs_per_s"], g["bleu_mean"], yerr=np.nan_to_num(err), marker="o",
                        capsize=3, label=name)
            for x, y, steps in zip(g["outputs_per_s"], g["bleu_mean"], g["steps"], strict=True):
                ax.annotate(f"{steps}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set(xlabel="outputs per second (timing pass: batch ÷ (MBR × min s per batch)), log scale",
               ylabel="BLEU (mean over seeds, 95% CI)", title=f"{suffix}: quality vs speed (labels: steps)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        columns = [*CONFIG_KEYS, "config", "device", "min_s", "median_s", "floor_s", "outputs_per_s", "speedup",
                   "speedup_mbr", "bleu_mean", "bleu_ci_low", "bleu_ci_high"]
        plots.append(_save(fig, rows[columns], out_dir, f"fig3_speed_quality_{suffix}", f"{title} ({suffix})"))
    return plots


def gamma_sweep(curves: pd.DataFrame | None, out_dir: Path) -> list[Plot]:
    """Fig. 4: own-decoder validation BLEU vs training steps for each γ of the models trained with
    several γ (arms sharing a curve drawn once; other sweep axes, if any, as separate lines).
    Steps rather than raw wall time: the wall times of runs at different moments are not comparable."""
    title = "Fig. 4: validation BLEU vs training steps per γ"
    if not _has_bleu(curves):
        return [Plot(title, skipped=_NO_CURVES)]
    bleu = model_curves(curves)
    swept = bleu.groupby("arms")["gamma"].transform("nunique") > 1
    if not swept.any():
        return [Plot(title, skipped="no arm was trained with several γ.")]
    plots = []
    for suffix, rows in _scopes(bleu[swept]):
        rows = rows.assign(other=rows["sweep"].map(sweep_text))
        data = _seed_bands(rows, ["arms", "gamma", "other"])
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for (arms, gamma, other), g in data.groupby(["arms", "gamma", "other"]):
            _band(ax, g["step"], g, f"{arms} γ={gamma:g}" + (f" ({other})" if other else ""))
        ax.set(xlabel="training step", ylabel="validation BLEU (mean, seed range)",
               title=f"{suffix}: γ sweep")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        plots.append(_save(fig, data, out_dir, f"fig4_gamma_{suffix}", f"{title} ({suffix})"))
    return plots


def bleu_vs_gamma(summary: pd.DataFrame, out_dir: Path) -> list[Plot]:
    """Fig. 4 (final quality): test BLEU against γ, each γ a point with its Student-t interval
    over seeds, one line per configuration decoded at several γ (same arm, sampler, steps and other
    sweep settings); the scope's other configurations and trivial rows as horizontal lines at their
    means. No figure, and no skip notice, without such a configuration."""
    rows = summary[summary["metric"] == "bleu"]
    rows = rows.assign(rest=rows["sweep"].map(sweep_without_gamma))
    line_keys = [k for k in CONFIG_KEYS if k not in ("gamma", "sweep")] + ["rest"]
    swept = rows.groupby(line_keys, dropna=False)["gamma"].transform("nunique") > 1
    plots = []
    for suffix, scope in _scopes(rows[swept]):
        others = rows[~swept].merge(scope[SCOPE_KEYS].drop_duplicates())
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        points = scope.sort_values("gamma")
        for _, g in points.groupby(line_keys, dropna=False, sort=True):
            err = np.abs(g[["t_low", "t_high"]].to_numpy().T - g["mean"].to_numpy())
            label = config_labels(g.iloc[:1].assign(gamma=np.nan)).iloc[0]
            ax.errorbar(g["gamma"], g["mean"], yerr=np.nan_to_num(err), marker="o", capsize=3, label=label)
        for i, (label, mean) in enumerate(zip(config_labels(others), others["mean"], strict=True), start=1):
            ax.axhline(mean, linestyle=":" if label.endswith("(trivial)") else "--", linewidth=1, color=f"C{i}",
                       label=label)  # in the legend: lines at near-equal means would overprint text labels
        ax.set(xlabel="γ (discrete-noise rate in training)", ylabel="test BLEU (mean, 95% t interval over seeds)",
               title=f"{suffix}: final BLEU vs γ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        data = pd.concat([points.assign(line="swept"), others.assign(line="other")], ignore_index=True)
        columns = [*CONFIG_KEYS, "line", "n", "mean", "std", "t_low", "t_high"]
        plots.append(_save(fig, data[columns], out_dir, f"fig4_bleu_vs_gamma_{suffix}",
                           f"Fig. 4: final test BLEU vs γ, Student-t interval over seeds ({suffix})"))
    return plots


def dataset_bars(summary: pd.DataFrame, out_dir: Path, metrics: tuple[str, ...] = ("bleu", "bertscore")) -> list[Plot]:
    """Per-dataset bars of each configuration's mean with its 95% bootstrap CI, one panel per metric."""
    title = "Per-dataset results"
    if summary["dataset"].nunique() < 2:
        return [Plot(title, skipped="only one dataset.")]
    data = summary[summary["metric"].isin(metrics)]
    data = data.assign(config=config_labels(data))
    shown = [m for m in metrics if m in set(data["metric"])]
    fig = Figure(figsize=(5 + 1.5 * data["dataset"].nunique(), 1 + 3.5 * len(shown)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(shown), 1, squeeze=False)[:, 0])
    datasets, configs = sorted(data["dataset"].unique()), list(dict.fromkeys(data["config"]))
    width = 0.8 / len(configs)
    for ax, metric in zip(axes, shown, strict=True):
        rows = data[data["metric"] == metric].set_index(["config", "dataset"])
        for i, config in enumerate(configs):
            g = rows.xs(config, level="config").reindex(datasets)
            err = np.abs(g[["ci_low", "ci_high"]].to_numpy().T - g["mean"].to_numpy())
            ax.bar(np.arange(len(datasets)) + (i - (len(configs) - 1) / 2) * width, g["mean"], width,
                   yerr=np.nan_to_num(err), capsize=2, label=config)
        ax.set_xticks(np.arange(len(datasets)), datasets)
        ax.set(ylabel=f"{metric} (mean, 95% CI)")
        ax.grid(alpha=0.3, axis="y")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    columns = [*CONFIG_KEYS, "config", "metric", "n", "mean", "std", "ci_low", "ci_high"]
    return [_save(fig, data[columns], out_dir, "datasets_bars", title)]


def absorbing_norms(norms: pd.DataFrame, out_dir: Path) -> list[Plot]:
    """‖m‖ (EMA) against training step per model, mean over seeds with the seed range as a band, and
    the mean word-embedding row norm (EMA) of the same model as a dashed reference line."""
    title = "The absorbing state: ‖m‖ (EMA) vs training step"
    if norms.empty or norms["m_norm_ema"].isna().all():
        return [Plot(title, skipped="no `m_norm_ema` in curves.parquet.")]
    plots = []
    for suffix, rows in _scopes(norms):
        data = (
            rows.groupby(["arms", "gamma", "sweep", "step"], dropna=False)
            .agg(n_seeds=("seed", "nunique"), m_mean=("m_norm_ema", "mean"), m_min=("m_norm_ema", "min"),
                 m_max=("m_norm_ema", "max"), emb_mean=("emb_norm_ema", "mean"))
            .reset_index()
        )
        several = data.groupby("arms")["gamma"].transform(lambda g: g.nunique(dropna=False)) > 1
        data = data.assign(label=data["arms"] + data["gamma"].map(lambda g: f" γ={g:g}").where(several, "")
                           + data["sweep"].map(sweep_text).map(lambda t: f" ({t})" if t else ""))
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for label, g in data.groupby("label", sort=True):
            line, = ax.plot(g["step"], g["m_mean"], marker=".", label=f"{label}: ‖m‖")
            ax.fill_between(g["step"], g["m_min"], g["m_max"], color=line.get_color(), alpha=0.2, linewidth=0)
            ax.plot(g["step"], g["emb_mean"], linestyle="--", color=line.get_color(), linewidth=1,
                    label=f"{label}: mean embedding norm")
        ax.set(xlabel="training step", ylabel="norm (EMA weights)", title=f"{suffix}: ‖m‖ vs embedding norm")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        plots.append(_save(fig, data, out_dir, f"absorbing_m_norm_{suffix}", f"{title} ({suffix})"))
    return plots
