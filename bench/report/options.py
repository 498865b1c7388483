"""The report's options, kept free of heavy imports: every ``python -m bench`` command builds the
report's flags from them."""

from __future__ import annotations

from dataclasses import dataclass

CORRECTIONS = ("holm", "bh")


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report (the CLI flags of ``python -m bench report``)."""

    baseline: str = "baseline"  # the arm every other one is compared against
    level_fraction: float = 0.9  # BLEU level = this × the weakest final own-decoder validation BLEU ...
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

    def level_text(self, baseline: str, arm: str) -> str:
        """The convergence level in words, for ``baseline`` compared with ``arm``."""
        if self.level_bleu is not None:
            return f"BLEU {self.level_bleu:g} (absolute level)"
        return (f"{self.level_fraction:g} × the weakest final own-decoder validation BLEU among the seeds of the "
                f"{baseline} and {arm} arms (so that both reach it on every seed)")
