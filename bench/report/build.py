"""Build the report: load a results directory, analyse it, compute its sections, write CSV tables,
figures and report.md."""

from __future__ import annotations

from pathlib import Path

from bench.report.analysis import ReportOptions, analyse
from bench.report.load import load_results
from bench.report.markdown import Report, render
from bench.report.plots import (
    Plot,
    absorbing_norms,
    bleu_vs_gamma,
    dataset_bars,
    gamma_sweep,
    speed_quality,
    training_curves,
)
from bench.report.sections.absorbing import AbsorbingState
from bench.report.sections.claims import Claims
from bench.report.sections.convergence import TrainingConvergence
from bench.report.sections.cross_dataset import AcrossDatasets
from bench.report.sections.sampling import SamplingSpeed
from bench.report.sections.significance import Significance
from bench.report.sections.sweep_points import SweepPoints

REPORT = "report.md"


def write_tables(report: Report, out_dir: Path) -> list[Path]:
    """Every non-empty table of the report as ``<name>.csv``, in the order the report links them;
    returns the paths written."""
    a, significance = report.analysis, report[Significance]
    convergence, absorbing, crossdata = report[TrainingConvergence], report[AbsorbingState], report[AcrossDatasets]
    tables = {
        "claims": report[Claims].table,
        "summary": a.summary,
        "trivial_margins": a.margins,
        "seed_tests": significance.seed_tests,
        "sentence_tests": significance.sentence_tests,
        "levels": convergence.levels,
        "convergence": convergence.runs,
        "convergence_summary": convergence.summary,
        "curve_check": convergence.curve_check,
        "absorbing_norms": absorbing.final_norms,
        "absorbing_questions": absorbing.questions,
        "sweep_points": report[SweepPoints].sweeps,
        "dataset_effects": crossdata.crossdata.effects,
        "heterogeneity": crossdata.crossdata.pooled,
        "sampling": report[SamplingSpeed].sampling,
    }
    paths = []
    for name, frame in tables.items():
        if len(frame):
            frame.to_csv(out_dir / f"{name}.csv", index=False)
            paths.append(out_dir / f"{name}.csv")
    return paths


def draw_figures(report: Report, out_dir: Path) -> list[Plot]:
    """The report's figures (the papers' Figs. 2-4, ‖m‖, per-dataset bars), in the order it shows them."""
    a = report.analysis
    return [
        *training_curves(a.convergence.models, a.convergence.levels, out_dir),
        *speed_quality(report[SamplingSpeed].sampling, out_dir),
        *gamma_sweep(a.convergence.models, out_dir),
        *bleu_vs_gamma(a.summary, out_dir),
        *absorbing_norms(report[AbsorbingState].norms, out_dir),
        *dataset_bars(a.summary, out_dir),
    ]


def build_report(results_dir: str | Path, out_dir: str | Path, **options: object) -> Path:
    """Write ``report.md`` with its CSV tables and figures into ``out_dir``; return its path.

    ``options`` are the fields of ``ReportOptions`` (baseline, level_fraction, level_bleu, n_boot,
    alpha, correction, equivalence_margin, seed).
    """
    results = load_results(results_dir)  # before making out_dir: bad results leave no empty folder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report.compute(analyse(results, ReportOptions(**options)))
    tables = write_tables(report, out_dir)
    path = out_dir / REPORT
    path.write_text(render(report, draw_figures(report, out_dir), tables, out_dir), encoding="utf-8")
    return path
