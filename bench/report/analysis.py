"""What several of the report's sections share, computed once from a results directory (no I/O
beyond loading). Each section computes the rest of what it shows (``bench.report.sections``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench import schema
from bench.report.claims import CLAIM_ARM, PUBLISHED_ARM, PUBLISHED_BASELINE
from bench.report.configs import has_arm, is_trivial, reference_configs
from bench.report.load import Results, ResultsError, wide_cells
from bench.report.options import ReportOptions
from bench.report.significance import summarize_seeds
from bench.report.speedups import (
    bleu_levels,
    calibrated_curves,
    convergence,
    convergence_summary,
    model_curves,
    training_devices,
)
from bench.report.timing import config_speeds, train_costs
from bench.report.trivial import margins


@dataclass(frozen=True)
class Convergence:
    """Own-decoder validation-BLEU curves and the time each takes to a BLEU level: read by the
    claims, the convergence section and Figs. 2 and 4."""

    models: pd.DataFrame  # own-decoder curves, one per model, decoder and seed, calibrated by the timing pass
    levels: pd.DataFrame  # BLEU level per scope, set by the suite's baseline and the claim arm
    readings: dict[str, dict]  # per baseline arm with a curve: its levels, runs, summary and level_text
    skipped: str | None  # why the suite's baseline has no reading (None when it has one)


@dataclass(frozen=True)
class Analysis:
    """The tables several sections read: the cells and their seed summary (main table, across datasets,
    sampling, figures), the references (setup, significance, sampling), the margins over the trivial
    rows (first lines, claims, main table, trivial rows), the timing pass's costs and speeds (claims,
    convergence, sampling) and the convergence to the BLEU level (claims, convergence, figures)."""

    results: Results
    options: ReportOptions
    cells: pd.DataFrame  # one row per cell (trivial ones included), one column per metric
    metrics: list[str]  # quality and diversity metrics present
    references: pd.DataFrame  # per scope, the baseline config others are compared against
    summary: pd.DataFrame  # per config × metric across seeds (trivial configs: n = 1, no interval)
    margins: pd.DataFrame  # each model config's margin over each trivial row, per metric
    costs: pd.DataFrame  # timed seconds per optimizer step per model (one row per arm)
    speeds: pd.DataFrame  # timed sampling per config (primary device)
    convergence: Convergence

    @property
    def model_cells(self) -> pd.DataFrame:
        """The cells of decoded models (no trivial rows)."""
        return self.cells[~is_trivial(self.cells)]

    @property
    def no_reference(self) -> str | None:
        """Why nothing is compared with a baseline, or None when the table has the baseline arm."""
        if self.references.empty:
            return f"no `{self.options.baseline}` arm in the table, so nothing is compared with a baseline."
        return None


def _levels(models: pd.DataFrame, baseline: str, arm: str, o: ReportOptions) -> pd.DataFrame:
    return bleu_levels(models, baseline=baseline, fraction=o.level_fraction, absolute=o.level_bleu, arm=arm)


def _reading(models: pd.DataFrame, levels: pd.DataFrame, baseline: str, arm: str, costs: pd.DataFrame,
             o: ReportOptions) -> dict | None:
    """``levels``, the per-curve runs against ``baseline`` and their summary, and the level in words
    (set with ``arm``); None without a ``baseline`` curve."""
    runs = convergence(models, levels, baseline=baseline, costs=costs)
    if runs.empty or not runs["baseline"].any():
        return None
    return {"levels": levels, "runs": runs, "summary": convergence_summary(runs, alpha=o.alpha),
            "level_text": o.level_text(baseline, arm)}


def _convergence(curves: pd.DataFrame | None, cells: pd.DataFrame, costs: pd.DataFrame,
                 o: ReportOptions) -> Convergence:
    """The suite baseline's reading, and the as-published one where its baseline ran."""
    if curves is None or not ((curves["metric"] == "bleu") & curves["own_decoder"]).any():
        return Convergence(pd.DataFrame(), pd.DataFrame(), {}, "no own-decoder validation-BLEU curves "
                           "(curves.parquet absent or without `bleu`).")
    models = calibrated_curves(model_curves(curves, cells), costs)
    models = models.merge(training_devices(cells), left_on="train_key", right_index=True, how="left")
    levels = _levels(models, o.baseline, CLAIM_ARM, o)
    readings: dict[str, dict] = {}
    if (main := _reading(models, levels, o.baseline, CLAIM_ARM, costs, o)) is not None:
        readings[o.baseline] = main
    if o.baseline != PUBLISHED_BASELINE and has_arm(models["arms"], PUBLISHED_BASELINE).any():
        published_levels = _levels(models, PUBLISHED_BASELINE, PUBLISHED_ARM, o)
        published = _reading(models, published_levels, PUBLISHED_BASELINE, PUBLISHED_ARM, costs, o)
        if published is not None:
            readings[PUBLISHED_BASELINE] = published
    skipped = None if main is not None else f"no `{o.baseline}` curve to set the BLEU level (give an absolute level)."
    return Convergence(models, levels, readings, skipped)


def analyse(results: Results, options: ReportOptions) -> Analysis:
    """Compute the tables several sections share from ``results``."""
    o = options
    cells = wide_cells(results.table)
    models_only = cells[~is_trivial(cells)]
    if models_only.empty:
        raise ResultsError(f"{results.directory}: the table holds trivial rows only (no model was decoded), so "
                           "there is nothing to compare or test; read them in table.csv")
    metrics = [m for m in schema.quality_metrics() + schema.diversity_metrics() if m in cells]
    numeric = metrics + [m for m in schema.SPEED_METRICS + schema.TRAIN_METRICS + schema.CURVE_CHECK_METRICS
                         if m in cells]
    costs = train_costs(results.timing)
    return Analysis(
        results=results, options=o, cells=cells, metrics=metrics,
        references=reference_configs(models_only, o.baseline),
        summary=summarize_seeds(cells, numeric, n_boot=o.n_boot, alpha=o.alpha, seed=o.seed),
        margins=margins(cells, metrics, alpha=o.alpha), costs=costs, speeds=config_speeds(results.timing),
        convergence=_convergence(results.curves, cells, costs, o),
    )
