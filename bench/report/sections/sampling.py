"""Sampling speed and quality (paper Fig. 3): every configuration timed on one batch, outputs per second
with and without MBR, the NFE × forward floor, speedups over the reference; and the training cost
per optimizer step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.analysis import Analysis
from bench.report.configs import SCOPE_KEYS, config_labels
from bench.report.fmt import NA, distinct, gamma_text, md_table, num, speedup, with_ci
from bench.report.sections import Page, Section
from bench.report.timing import NO_TIMING, clock_note, elsewhere, sampling_speedups


@dataclass(frozen=True)
class SamplingSpeed(Section):
    """The sampling table from the timing pass, configurations timed elsewhere, and the training cost
    per step (skipped without a timing pass)."""

    sampling: pd.DataFrame  # timed sampling per config with speedups over the reference and quality
    speeds: pd.DataFrame  # timed sampling per config (primary device)
    costs: pd.DataFrame  # timed seconds per optimizer step per model
    timing: pd.DataFrame | None  # the timing pass

    @classmethod
    def compute(cls, a: Analysis) -> SamplingSpeed:
        return cls(sampling_speedups(a.speeds, a.summary, a.references), a.speeds, a.costs, a.results.timing)

    def render(self, page: Page) -> str:
        name = page.name
        head = "## Sampling speed and quality (paper Fig. 3)"
        if self.timing is None:
            return f"{head}\n\nSkipped: {NO_TIMING}"
        frame = self.sampling.sort_values([*SCOPE_KEYS, "outputs_per_s"], ascending=[True] * len(SCOPE_KEYS) + [False])
        rows = [
            name.scope(r) | {
                "config": r["config"], "NFE": r["nfe"], "batch": r["timed_batch"], "reps": r["reps"],
                "s/batch, 1 candidate (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}"
                + (" (extrapolated)" if r["extrapolated"] else ""),
                "floor NFE × forward (s)": num(r["floor_s"]),
                "outputs/s (÷ MBR)": num(r["outputs_per_s"]),
                "speedup without MBR": speedup(r["speedup"]),
                "speedup incl. MBR (min; median)": f"{speedup(r['speedup_mbr'])}; {speedup(r['speedup_mbr_median'])}",
                "floor speedup incl. MBR": speedup(r["speedup_floor_mbr"]),
                "BLEU [CI]": with_ci(r.get("bleu_mean", np.nan), r.get("bleu_ci_low"), r.get("bleu_ci_high")),
                "BERTScore": num(r.get("bertscore_mean", np.nan)),
            }
            for r in name.configs(frame)
        ]
        costs = self.costs.drop_duplicates([*SCOPE_KEYS, "gamma", "sweep", "device", "train_step_s"])
        train = self.timing[self.timing["kind"] == "train_step"]
        train_rows = [
            {k: r[k] for k in name.varying} | {
                "model (arms)": r["arm"], "γ": gamma_text(r["gamma"]), "device": f"`{r['device']}`",
                "batch (sequences/step)": r["batch_size"], "reps": r["reps"],
                "s/step (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}",
                "wall s/step (min)": num(r["wall_min_s"]),
                "s per 1k examples (min)": num(1000 * r["min_s"] / r["batch_size"]) if r["batch_size"] else NA,
            }
            for r in train.sort_values([*SCOPE_KEYS, "arm", "device"]).to_dict("records")
        ]
        devices = distinct(costs["device"]) if len(costs) else distinct(self.speeds["device"])
        other = elsewhere(self.timing)
        other = other[other["kind"] == "sample_batch"]
        other_rows = [
            {k: r[k] for k in name.varying} | {
                "config": r["config"], "device": f"`{r['device']}`", "batch": r["batch_size"],
                "s/batch, 1 candidate (min; median)": f"{num(r['min_s'])}; {num(r['median_s'])}",
            }
            for r in other.assign(config=config_labels(other)).to_dict("records")
        ] if len(other) else []
        if other_rows:
            other_text = ["", "Timed on another device than the rest of its scope (listed, never divided by the "
                          "figures above):", "", md_table(other_rows)]
        else:
            other_text = []
        return "\n".join([
            head, "",
            f"From the timing pass on `{devices}`: every configuration decodes the same batch, interleaved with the others, "
            "a few repetitions after warm-up. s/batch is one candidate (MBR-n costs n of them); outputs/s = batch ÷ "
            "(MBR × min s). `speedup without MBR` compares sampled sequences per second with the reference (the "
            "baseline's DDPM with the most steps); `incl. MBR` compares outputs per second, charging each "
            "configuration for its MBR candidates (the paper's ~800x counts this way). The floor is NFE × one "
            "denoiser forward on the same batch: what the sampler would cost with nothing but the network. "
            f"Extrapolated: a long chain timed on fewer steps and scaled by steps. {clock_note(self.timing)} "
            "The cells' own `sentences_per_s` "
            "and wall times are kept in `summary.csv` as bookkeeping and never divided. BLEU: mean over seeds with "
            "its percentile-bootstrap CI.",
            "", md_table(rows), *other_text, "",
            "Training cost per optimizer step (the calibration of the convergence speedups), every device:",
            "", md_table(train_rows),
        ])
