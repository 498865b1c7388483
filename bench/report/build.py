"""Build the report: load a results directory, analyse it, write CSV tables, figures and report.md."""

from __future__ import annotations

from pathlib import Path

from bench.report.analysis import Analysis, ReportOptions, analyse
from bench.report.load import load_results
from bench.report.markdown import render
from bench.report.plots import (
    absorbing_norms,
    bleu_vs_gamma,
    dataset_bars,
    gamma_sweep,
    speed_quality,
    training_curves,
)

REPORT = "report.md"


def write_tables(a: Analysis, out_dir: Path) -> list[Path]:
    """Every non-empty table of the analysis as ``<name>.csv``; returns the paths written."""
    tables = {
        "claims": a.claims,
        "summary": a.summary,
        "trivial_margins": a.margins,
        "seed_tests": a.seed_tests,
        "sentence_tests": a.sentence_tests,
        "levels": a.levels,
        "convergence": a.convergence,
        "convergence_summary": a.convergence_summary,
        "curve_check": a.curve_check,
        "absorbing_norms": a.final_norms,
        "absorbing_questions": a.questions,
        "sweep_points": a.sweeps,
        "dataset_effects": a.crossdata.effects,
        "heterogeneity": a.crossdata.pooled,
        "sampling": a.sampling,
    }
    paths = []
    for name, frame in tables.items():
        if len(frame):
            frame.to_csv(out_dir / f"{name}.csv", index=False)
            paths.append(out_dir / f"{name}.csv")
    return paths


def build_report(results_dir: str | Path, out_dir: str | Path, **options: object) -> Path:
    """Write ``report.md`` with its CSV tables and figures into ``out_dir``; return its path.

    ``options`` are the fields of ``ReportOptions`` (baseline, level_fraction, level_bleu, n_boot,
    alpha, correction, equivalence_margin, seed).
    """
    results = load_results(results_dir)  # before making out_dir: bad results leave no empty folder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = analyse(results, ReportOptions(**options))
    tables = write_tables(a, out_dir)
    plots = [
        *training_curves(a.models, a.levels, out_dir),
        *speed_quality(a.sampling, out_dir),
        *gamma_sweep(a.models, out_dir),
        *bleu_vs_gamma(a.summary, out_dir),
        *absorbing_norms(a.norms, out_dir),
        *dataset_bars(a.summary, out_dir),
    ]
    path = out_dir / REPORT
    path.write_text(render(a, plots, tables, out_dir), encoding="utf-8")
    return path
