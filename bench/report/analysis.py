"""Everything the report states, computed from a results directory (no I/O beyond loading)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench import schema
from bench.report.absorbing import answer_questions, final_norms, norm_curves
from bench.report.claims import CLAIM_ARM, PUBLISHED_ARM, PUBLISHED_BASELINE, judge_claims
from bench.report.configs import CONFIG_KEYS, has_arm, is_trivial, reference_configs
from bench.report.crossdata import CrossData, cross_datasets
from bench.report.load import Results, ResultsError, wide_cells
from bench.report.options import ReportOptions
from bench.report.significance import seed_tests, sentence_tests, summarize_seeds
from bench.report.speedups import (
    bleu_levels,
    calibrated_curves,
    convergence,
    convergence_summary,
    extra_curves,
    final_points,
    model_curves,
    own_decoders,
    training_devices,
)
from bench.report.sweeps import sweep_contrasts
from bench.report.timing import (
    NO_TIMING,
    config_speeds,
    device_note,
    sampling_speedups,
    train_costs,
)
from bench.report.trivial import NO_TRIVIAL, margins
from diffuseq.metrics.registry import METRICS


@dataclass(frozen=True)
class Analysis:
    """The report's tables. Empty frames come with a reason in ``missing`` (keyed by table name)."""

    results: Results
    options: ReportOptions
    cells: pd.DataFrame  # one row per cell (trivial ones included), one column per metric
    metrics: list[str]  # quality and diversity metrics present
    references: pd.DataFrame  # per scope, the baseline config others are compared against
    summary: pd.DataFrame  # per config × metric across seeds (trivial configs: n = 1, no interval)
    seed_tests: pd.DataFrame  # paired tests vs the reference on matched seeds (model configs only)
    sentence_tests: pd.DataFrame  # paired bootstrap over sentences within each seed (model configs only)
    margins: pd.DataFrame  # each model config's margin over each trivial row, per metric
    levels: pd.DataFrame  # BLEU level per scope
    models: pd.DataFrame  # own-decoder validation-BLEU curves, one per model, decoder and seed
    extra_curves: pd.DataFrame  # BLEU curves of other decoders (listed, never used for speedups)
    own_decoders: pd.DataFrame  # per scope and arm, its own curve's decoder
    convergence: pd.DataFrame  # per own-decoder curve (model, decoder, seed)
    convergence_summary: pd.DataFrame  # per curve over seeds
    curve_check: pd.DataFrame  # per config: last curve point vs the cell's full decoder
    costs: pd.DataFrame  # timed seconds per optimizer step per model (one row per arm)
    speeds: pd.DataFrame  # timed sampling per config (primary device)
    sampling: pd.DataFrame  # speeds with speedups over the reference and quality
    norms: pd.DataFrame  # ‖m‖ and embedding norms per model, seed and step
    final_norms: pd.DataFrame  # per model over seeds
    questions: pd.DataFrame  # the absorbing-state questions, seed-paired
    sweeps: pd.DataFrame  # each sweep point vs the base point {}, seed-paired, with non-inferiority
    claims: pd.DataFrame
    crossdata: CrossData  # each arm's effect over the reference per dataset, and its heterogeneity
    published: dict = field(default_factory=dict)  # convergence of the as-published reading, if run
    notes: list[str] = field(default_factory=list)  # sentences for the report's first lines
    missing: dict[str, str] = field(default_factory=dict)


def _curve_check(cells: pd.DataFrame) -> pd.DataFrame:
    """Per model configuration over seeds: the last point of its arm's own validation curve, the
    cell's full decoder on the same subset, and the gap (full − curve)."""
    columns = [*CONFIG_KEYS, "n", "curve_bleu_final", "valid_bleu_full", "gap", "gap_std"]
    if not set(schema.CURVE_CHECK_METRICS) <= set(cells):
        return pd.DataFrame(columns=columns)
    rows = cells[~is_trivial(cells)].dropna(subset=schema.CURVE_CHECK_METRICS)
    rows = rows.assign(gap=rows["valid_bleu_full"] - rows["curve_bleu_final"])
    out = rows.groupby(CONFIG_KEYS, dropna=False, sort=False).agg(
        n=("seed", "nunique"), curve_bleu_final=("curve_bleu_final", "mean"),
        valid_bleu_full=("valid_bleu_full", "mean"), gap=("gap", "mean"), gap_std=("gap", "std")).reset_index()
    return out[columns]


def _convergence_tables(models: pd.DataFrame, baseline: str, arm: str, costs: pd.DataFrame,
                        o: ReportOptions) -> dict | None:
    """Levels (set by ``baseline`` and ``arm``), per-curve runs and their summary against
    ``baseline``; None without its curve."""
    levels = bleu_levels(models, baseline=baseline, fraction=o.level_fraction, absolute=o.level_bleu, arm=arm)
    runs = convergence(models, levels, baseline=baseline, costs=costs)
    if runs.empty or not runs["baseline"].any():
        return None
    return {"levels": levels, "runs": runs, "summary": convergence_summary(runs, alpha=o.alpha),
            "level_text": o.level_text(baseline, arm)}


def analyse(results: Results, options: ReportOptions) -> Analysis:
    """Compute every table of the report from ``results``."""
    o = options
    cells = wide_cells(results.table)
    models_only = cells[~is_trivial(cells)]
    if models_only.empty:
        raise ResultsError(f"{results.directory}: the table holds trivial rows only (no model was decoded), so "
                           "there is nothing to compare or test; read them in table.csv")
    metrics = [m for m in schema.quality_metrics() + schema.diversity_metrics() if m in cells]
    numeric = metrics + [m for m in schema.SPEED_METRICS + schema.TRAIN_METRICS + schema.CURVE_CHECK_METRICS
                         if m in cells]
    references = reference_configs(models_only, o.baseline)
    summary = summarize_seeds(cells, numeric, n_boot=o.n_boot, alpha=o.alpha, seed=o.seed)
    missing: dict[str, str] = {}
    notes: list[str] = []
    if (devices := sorted(set(models_only["device"]))) and len(devices) > 1:
        notes.append(f"**Cells from {len(devices)} devices** ({', '.join(f'`{d}`' for d in devices)}): a comparison "
                     "paired on seed may set a model trained on one device against one trained on another, and "
                     "the device then counts with the arm; keep one device per results folder to rule that out.")
    if references.empty:
        missing["references"] = f"no `{o.baseline}` arm in the table, so nothing is compared with a baseline."
    tests = seed_tests(models_only, references, metrics, alpha=o.alpha, correction=o.correction)
    within = sentence_tests(models_only, results.per_sentence, references, n_boot=o.n_boot, alpha=o.alpha,
                            seed=o.seed, correction=o.correction)
    if results.per_sentence is None:
        missing["sentence_tests"] = "no per_sentence.parquet."
    margin_table = margins(cells, metrics, alpha=o.alpha)
    if not is_trivial(cells).any():
        missing["trivial"] = NO_TRIVIAL
    costs = train_costs(results.timing)
    speeds = config_speeds(results.timing)
    if results.timing is None:
        missing["timing"] = NO_TIMING
        notes.append(f"**No timing pass:** {NO_TIMING}")
    elif (note := device_note(results.timing)) is not None:
        notes.append(note)
    convergences: dict[str, dict] = {}
    published: dict = {}
    curves = results.curves
    if curves is None or not ((curves["metric"] == "bleu") & curves["own_decoder"]).any():
        missing["convergence"] = "no own-decoder validation-BLEU curves (curves.parquet absent or without `bleu`)."
        models = pd.DataFrame()
        levels = runs = runs_summary = pd.DataFrame()
    else:
        models = calibrated_curves(model_curves(curves, cells), costs)
        models = models.merge(training_devices(cells), left_on="train_key", right_index=True, how="left")
        main = _convergence_tables(models, o.baseline, CLAIM_ARM, costs, o)
        if main is None:
            missing["convergence"] = f"no `{o.baseline}` curve to set the BLEU level (give an absolute level)."
            levels = bleu_levels(models, baseline=o.baseline, fraction=o.level_fraction, absolute=o.level_bleu,
                                 arm=CLAIM_ARM)
            runs = runs_summary = pd.DataFrame()
        else:
            convergences[o.baseline] = main
            levels, runs, runs_summary = main["levels"], main["runs"], main["summary"]
        if o.baseline != PUBLISHED_BASELINE and has_arm(models["arms"], PUBLISHED_BASELINE).any():
            published = _convergence_tables(models, PUBLISHED_BASELINE, PUBLISHED_ARM, costs, o) or {}
            if published:
                convergences[PUBLISHED_BASELINE] = published
    sampling = sampling_speedups(speeds, summary, references)
    norms = norm_curves(curves)
    claims = judge_claims(cells=cells, speeds=speeds, convergence=convergences, finals=final_points(models),
                          margins=margin_table,
                          timed=results.timing is not None, baseline=o.baseline,
                          margin_fraction=o.equivalence_margin, alpha=o.alpha, correction=o.correction)
    return Analysis(
        results=results, options=o, cells=cells, metrics=metrics, references=references, summary=summary,
        seed_tests=tests, sentence_tests=within, margins=margin_table, levels=levels, models=models,
        extra_curves=extra_curves(curves), own_decoders=own_decoders(models), convergence=runs, convergence_summary=runs_summary,
        curve_check=_curve_check(cells), costs=costs, speeds=speeds, sampling=sampling, norms=norms,
        final_norms=final_norms(norms),
        questions=answer_questions(cells, curves, alpha=o.alpha, correction=o.correction),
        sweeps=sweep_contrasts(models_only, {m: METRICS[m].higher_is_better for m in metrics
                                             if METRICS[m].higher_is_better is not None},
                               alpha=o.alpha, margin_fraction=o.equivalence_margin,
                               correction=o.correction),
        claims=claims,
        crossdata=cross_datasets(cells, [m for m in metrics if m in schema.quality_metrics()
                                         and METRICS[m].higher_is_better is not None],
                                 baseline=o.baseline, alpha=o.alpha),
        published=published, notes=notes, missing=missing,
    )
