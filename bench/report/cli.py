"""``python -m bench report``: the command-line face of ``build_report``."""

from __future__ import annotations

import argparse

from bench.report.options import CORRECTIONS, ReportOptions
from diffuseq.errors import report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the report's flags to ``parser``."""
    d = ReportOptions()
    parser.add_argument("--results", required=True, help="results directory (table.parquet, curves.parquet, ...)")
    parser.add_argument("--out", required=True, help="output directory for report.md, CSVs and figures")
    parser.add_argument("--baseline", default=d.baseline, help=f"arm to compare against (default: {d.baseline})")
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--level-fraction", type=float, default=d.level_fraction,
                       help="convergence level as a fraction of the baseline's final own-decoder validation BLEU "
                            f"(default: {d.level_fraction})")
    level.add_argument("--level-bleu", type=float, help="absolute convergence level (validation BLEU)")
    parser.add_argument("--n-boot", type=int, default=d.n_boot, help=f"bootstrap resamples (default: {d.n_boot})")
    parser.add_argument("--alpha", type=float, default=d.alpha, help=f"test level (default: {d.alpha})")
    parser.add_argument("--correction", choices=CORRECTIONS, default=d.correction,
                        help=f"multiple-comparison correction (default: {d.correction})")
    parser.add_argument("--equivalence-margin", type=float, default=d.equivalence_margin,
                        help="quality margin as a fraction of the reference's mean BLEU "
                             f"(default: {d.equivalence_margin})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"bootstrap RNG seed (default: {d.seed})")


def run(args: argparse.Namespace) -> int:
    """Build the report; 0 on success, 2 (with a message on stderr) for an unusable results directory."""
    from bench.report.build import build_report
    from bench.report.load import ResultsError

    try:
        path = build_report(
            args.results, args.out, baseline=args.baseline, level_fraction=args.level_fraction,
            level_bleu=args.level_bleu, n_boot=args.n_boot, alpha=args.alpha, correction=args.correction,
            equivalence_margin=args.equivalence_margin, seed=args.seed,
        )
    except ResultsError as err:
        return report(err)
    print(path)
    return 0
