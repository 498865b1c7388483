"""Everything the report states, computed from a results directory (no I/O beyond loading)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench import schema
from bench.report.claims import judge_claims
from bench.report.configs import reference_configs
from bench.report.load import Results, wide_cells
from bench.report.significance import seed_tests, sentence_tests, summarize_seeds
from bench.report.speedups import (
    bleu_levels,
    convergence,
    convergence_summary,
    model_curves,
    sampling_speedups,
)
from bench.report.stats import CORRECTIONS


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report (the CLI flags of ``python -m bench report``)."""

    baseline: str = "baseline"  # the arm every other one is compared against
    level_fraction: float = 0.9  # BLEU level = this × the baseline's final validation BLEU ...
    level_bleu: float | None = None  # ... unless an absolute level is given
    n_boot: int = 2000  # bootstrap resamples (across seeds and over sentences)
    alpha: float = 0.05  # test level; intervals are (1 − alpha)
    correction: str = "holm"  # multiple-comparison correction: holm | bh
    equivalence_margin: float = 0.05  # quality margin, as a fraction of the reference's mean BLEU
    seed: int = 0  # bootstrap RNG seed

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, not {self.correction!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {self.alpha}")

    @property
    def level_text(self) -> str:
        if self.level_bleu is not None:
            return f"BLEU {self.level_bleu:g} (absolute level)"
        return f"{self.level_fraction:g} × the {self.baseline} arm's final validation BLEU (mean over seeds)"


@dataclass(frozen=True)
class Analysis:
    """The report's tables. Empty frames come with a reason in ``missing`` (keyed by table name)."""

    results: Results
    options: ReportOptions
    cells: pd.DataFrame  # one row per cell, one column per metric
    metrics: list[str]  # quality and diversity metrics present
    references: pd.DataFrame  # per scope, the baseline config others are compared against
    summary: pd.DataFrame  # per config × metric across seeds
    seed_tests: pd.DataFrame  # paired tests vs the reference on matched seeds
    sentence_tests: pd.DataFrame  # paired bootstrap over sentences within each seed
    levels: pd.DataFrame  # BLEU level per scope
    models: pd.DataFrame  # validation-BLEU curves, one per model (train_key) and seed
    convergence: pd.DataFrame  # per training curve (model and seed)
    convergence_summary: pd.DataFrame  # per model (scope, arms sharing it, γ, sweep point) over seeds
    sampling: pd.DataFrame  # throughput and speedups per config
    claims: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)


def analyse(results: Results, options: ReportOptions) -> Analysis:
    """Compute every table of the report from ``results``."""
    o = options
    cells = wide_cells(results.table)
    metrics = [m for m in schema.QUALITY_METRICS + schema.DIVERSITY_METRICS if m in cells]
    numeric = metrics + [m for m in schema.SPEED_METRICS + schema.TRAIN_METRICS if m in cells]
    references = reference_configs(cells, o.baseline)
    summary = summarize_seeds(cells, numeric, n_boot=o.n_boot, alpha=o.alpha, seed=o.seed)
    missing: dict[str, str] = {}
    if references.empty:
        missing["references"] = f"no `{o.baseline}` arm in the table, so nothing is compared with a baseline."
    tests = seed_tests(cells, references, metrics, alpha=o.alpha, correction=o.correction)
    within = sentence_tests(cells, results.per_sentence, references, n_boot=o.n_boot, alpha=o.alpha,
                            seed=o.seed, correction=o.correction)
    if results.per_sentence is None:
        missing["sentence_tests"] = "no per_sentence.parquet."
    if results.curves is None or not (results.curves["metric"] == "bleu").any():
        missing["convergence"] = "no validation-BLEU curves (curves.parquet absent or without `bleu`)."
        models = levels = runs = runs_summary = pd.DataFrame()
    else:
        models = model_curves(results.curves, cells)
        levels = bleu_levels(models, baseline=o.baseline, fraction=o.level_fraction, absolute=o.level_bleu)
        runs = convergence(models, levels, baseline=o.baseline)
        runs_summary = convergence_summary(runs, alpha=o.alpha)
        if runs.empty:
            missing["convergence"] = f"no `{o.baseline}` curve to set the BLEU level (give an absolute level)."
    if "sentences_per_s" in cells:
        sampling = sampling_speedups(cells, summary, references)
    else:
        missing["sampling"] = "no `sentences_per_s` metric in the table."
        sampling = pd.DataFrame()
    claims = judge_claims(summary=summary, seed_tests=tests, sampling=sampling, convergence=runs_summary,
                          references=references, level_text=o.level_text, margin_fraction=o.equivalence_margin)
    return Analysis(results, o, cells, metrics, references, summary, tests, within, levels, models, runs,
                    runs_summary, sampling, claims, missing)
