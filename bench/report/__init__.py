"""The reporting layer: reads only a results directory (``bench.schema``) and writes a Markdown
report with speedup and significance tables, figures and a verdict per paper claim.

    from bench.report import build_report
    build_report("results/main", "results/main/report", level_fraction=0.9, correction="holm")
"""

from bench.report.analysis import Analysis, ReportOptions, analyse
from bench.report.build import build_report
from bench.report.load import Results, ResultsError, load_results

__all__ = ["Analysis", "ReportOptions", "Results", "ResultsError", "analyse", "build_report", "load_results"]
