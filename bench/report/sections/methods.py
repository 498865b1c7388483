"""Methods: how every interval, test, correction, speedup and verdict of the report is computed."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.analysis import Analysis
from bench.report.claims import CLAIM_ARM, GAMMA_RANGE, MUCH_FASTER, PAPER_GAMMA
from bench.report.options import ReportOptions
from bench.report.sections import Page, Section


@dataclass(frozen=True)
class Methods(Section):
    """One paragraph per method, with this report's options filled in."""

    options: ReportOptions

    @classmethod
    def compute(cls, a: Analysis) -> Methods:
        return cls(a.options)

    def render(self, page: Page) -> str:
        o = self.options
        correction = {
            "holm": "Holm's step-down method (family-wise error; implemented in bench.report.stats, scipy has none)",
            "bh": "Benjamini–Hochberg (false discovery rate; scipy.stats.false_discovery_control)",
        }[o.correction]
        items = [
            f"**Across seeds.** Mean, sample std (ddof 1), and a {1 - o.alpha:.0%} percentile bootstrap CI of the mean "
            f"(scipy.stats.bootstrap, {o.n_boot} resamples, seed {o.seed}). Percentile rather than BCa because BCa's "
            "jackknife acceleration is unstable with 3-5 seeds. Any bootstrap interval is too narrow for few seeds "
            "(about 75% actual coverage for a nominal 95% at n = 3); `summary.csv` also has Student-t intervals "
            "(`t_low`, `t_high`), which are exact for normal seed-to-seed variation.",
            "**Trivial rows** (`copy_source`, `nearest_train_target`) need no model and are deterministic: one cell "
            "per dataset, no interval, never the reference of a paired test. A configuration's margin over one is "
            "its mean minus the trivial value, with its own Student-t interval shifted by that constant; it *fails* "
            "to beat the row when the mean is at or below it.",
            "**Paired tests on seeds.** scipy.stats.ttest_rel and scipy.stats.wilcoxon (two-sided; zero differences "
            "dropped), effect size d_z. With fewer than 2 matched seeds, all-zero differences, or a constant "
            "difference, the t-test is reported as n/a with the reason.",
            "**Paired bootstrap over sentences** (Koehn 2004), per seed: an index matrix of "
            f"{o.n_boot} × n_sentences draws shared by both cells; P(A > B) is the fraction of resamples where A's "
            "mean is higher; p = (1 + #{|Δ*ᵦ − Δ| ≥ |Δ|}) / (B + 1); the CI is the percentile interval of Δ*.",
            f"**Multiple comparisons.** {correction}; one family per metric and kind of test (t-tests, Wilcoxon "
            f"tests, within-seed bootstraps), across configurations, datasets and seeds; the claims table is one "
            f"family per direction of test; the absorbing-state questions one family per metric. α = {o.alpha:g}.",
            f"**Convergence.** Level: {o.level_text(o.baseline, CLAIM_ARM)}, from their own-decoder curves. Only curves of each arm's "
            "own decoder enter (curves.parquet `own_decoder`); other decoders' curves are listed, never used. Crossing "
            "points are interpolated linearly between evaluations (a curve at the level at its first evaluation "
            "reports that evaluation, an upper bound); examples seen = step × global batch. Calibrated seconds = "
            "steps to the level × the model's timed seconds per optimizer step (min over the timing pass's "
            "repetitions), so the calibrated speedup is the steps speedup × the ratio of per-step costs.",
            "**Speed.** Only from the timing pass (timing.parquet): configurations timed on the same batch, "
            "interleaved, after warm-up, on one device; min and median over repetitions. Per scope, ratios use one "
            "device (the one that timed the most configurations); results from different devices are never divided "
            "by each other. A unit is read on two clocks: a 1-thread pass on a CPU divides the process's CPU seconds "
            "(the work, not the waits while other processes ran: the ratios do not move with the machine's load), any "
            "other pass wall seconds; timing.parquet keeps both. Outputs per second = batch / seconds for the batch "
            "with all its MBR candidates, decoded as the cells decode them (stacked); the floor is NFE × one "
            "denoiser forward. Without a timing pass there is no speed claim; the cells' raw wall times are never "
            "used instead.",
            f"**Claims.** `{CLAIM_ARM}` config: DPM-Solver++ if present, γ nearest {PAPER_GAMMA:g}, most steps; the "
            "reference: the baseline's DDPM with the most steps and its largest MBR. Quality margin = "
            f"{o.equivalence_margin:.0%} of the reference's mean BLEU. (a) one-sided one-sample t on the per-seed log "
            "speedups in calibrated seconds (H1: > 0); (b) at least "
            f"{MUCH_FASTER:g}x more outputs per second counting MBR (from min_s and from median_s alike; below "
            f"{MUCH_FASTER:g}x by both refutes it), and BLEU non-inferiority: one-sided t of Δ > −margin on matched "
            "seeds; (c) equivalence by TOST: p = the larger of the one-sided p-values of Δ > −margin and Δ < +margin "
            "(the opposite: Δ outside the margin, the smaller one-sided p doubled); (d) "
            f"γ: the best γ in [{GAMMA_RANGE[0]:g}, {GAMMA_RANGE[1]:g}] vs the best γ outside it (both by mean), paired "
            "t on matched seeds, from test BLEU of the γ-swept configuration with the most γ (else the final "
            "own-curve validation BLEU). A constant, non-zero difference gives p = 0 (and 1 in the other direction).",
            "**Seeds to decide** (inconclusive claims): the normal-approximation sample size of a one-sided test at "
            "level α with 80% power, n = ⌈((z₁₋α + z₀.₈) · s / |d − d₀|)²⌉, where d is the observed mean of the "
            "claim's per-seed quantity (log speedup, BLEU Δ, |BLEU Δ| for equivalence), s its standard deviation "
            "across seeds and d₀ the threshold (0, −margin, or the margin); at least one more seed than observed, "
            "since the approximation ignores the t distribution and the correction.",
        ]
        return "## Methods\n\n" + "\n".join(f"- {item}" for item in items)
