"""The results tables' columns: the one contract between the runner and the reporting layer.

A results directory holds four Parquet files, each consolidated from per-cell files:

- ``table.parquet``: one tidy row per (cell, metric) with every key in CELL_KEYS.
- ``curves.parquet``: periodic measurements during training, one row per (model, arm, step, metric).
- ``per_sentence.parquet``: per-sentence scores of each cell, for paired tests.
- ``timing.parquet``: the controlled timing pass, one row per timed configuration (see below).
  Speedups are computed from it, never from the wall times of cells that ran at different moments.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from diffuseq.metrics.registry import metrics

TABLE = "table.parquet"
CURVES = "curves.parquet"
PER_SENTENCE = "per_sentence.parquet"
TIMING = "timing.parquet"

CELL_KINDS = ("model", "trivial")
IMPORTED_KEY_PREFIX = "imported-"  # train_key of an imported run: this, then its identity's first 12 hex


@dataclass(frozen=True)
class CellRecord:
    """The keys of one result row: the one definition of what a cell records (CELL_KEYS)."""

    suite: str  # suite name
    cell_id: str  # unique id of (arm, dataset, seed, sampler, steps, overrides)
    train_key: str  # content hash of the training spec (shared by arms that share a model); "" for trivial cells
    arm: str  # e.g. baseline, hard_mask, absorb_train_only, v2, official_v2_sampling, copy_source
    arm_label: str  # the arm file's one-line label, e.g. "v2 as the paper describes it"
    kind: str  # "model" (a trained model, decoded) or "trivial" (no model: copy_source, nearest_train_target)
    dataset: str  # e.g. default, qqp
    seed: int  # trivial cells are deterministic and have seed 0 only
    sampler: str  # ddpm | ddim | dpm_solver++ | none (trivial)
    steps: int  # sampler steps (0 for trivial cells)
    nfe: int  # model evaluations per sample (0 for trivial cells)
    mbr: int  # MBR candidates per source (1 = no MBR)
    batch_size: int  # sampling batch size
    preset: str  # smoke | cpu | paper
    gamma: float  # discrete-noise γ used in training (NaN for trivial cells)
    code_version: str  # git describe of the code
    device: str  # e.g. cpu, cuda:NVIDIA H100
    threads: int  # torch threads of the process that decoded and scored the cell (the executor's choice; docs/design.md §3)
    bertscore_model: str  # model used for BERTScore
    wall_time_s: float  # wall time of the whole cell (sampling + evaluation); bookkeeping only
    label: str  # sampler variant label, e.g. dpm_solver++-10
    sweep: str  # JSON of the sweep point's training overrides ("{}" without a sweep)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "str": str}[f.type]
            if not isinstance(value, want) or isinstance(value, bool):
                raise TypeError(f"CellRecord.{f.name} must be {f.type}, got {value!r}")
        if self.kind not in CELL_KINDS:
            raise ValueError(f"CellRecord.kind must be one of {CELL_KINDS}, got {self.kind!r}")


CELL_KEYS = [f.name for f in fields(CellRecord)]
TABLE_COLUMNS = [*CELL_KEYS, "metric", "value"]

# Metric names in table.parquet (quality averaged over sentences unless noted).
# Quality and diversity metrics are the registered ones (diffuseq.metrics.registry), by name:
# quality_metrics() and diversity_metrics() below read the registry when called.
# Raw wall-clock figures of the cell itself, kept as columns but never divided across cells:
# sentences_per_s counts every sampled sequence, MBR candidates included; sample_wall_s sums all
# candidates' time. Speed claims come from timing.parquet.
SPEED_METRICS = ["sentences_per_s", "sample_wall_s"]
# Training bookkeeping of the model the cell decodes: optimizer steps, training examples seen
# (steps × global batch), raw training wall time.
TRAIN_METRICS = ["train_steps", "train_examples", "train_wall_s"]
# The cheap curve decoder checked against the cell's own full decoder on the same validation
# subset at the end of training (one sample each, seed 0): the last point of the arm's own
# validation-BLEU curve, and the cell's decoder (e.g. DDPM over all 2000 steps) on those sources.
CURVE_CHECK_METRICS = ["curve_bleu_final", "valid_bleu_full"]


def quality_metrics() -> list[str]:
    return metrics("sentence", "model", "output", "corpus")


def diversity_metrics() -> list[str]:
    return metrics("set")


def cell_metrics() -> set[str]:
    """Every metric name a cell may record."""
    return {*metrics(), *SPEED_METRICS, *TRAIN_METRICS, *CURVE_CHECK_METRICS}

CURVE_COLUMNS = [
    "suite", "train_key", "arm", "dataset", "seed", "preset", "gamma", "sweep",
    "step",  # optimizer steps
    "examples",  # training examples seen: step × global batch
    "wall_s",  # raw training wall time at that step (bookkeeping; calibrated seconds come from timing)
    "metric", "value",
    "decoder",  # for metric "bleu": the decoder's label, e.g. "ddpm-100 clamp"; "" for other metrics
    "own_decoder",  # True when `decoder` is the arm's own decoding family (the curve speedups use)
]
# Curve metrics: "bleu" (validation BLEU of the EMA model on a fixed subset, one row per arm and
# decoder), then each model family's validation terms (``val_<term>``, Family.val_terms) and training
# log figures (Family.log_terms: the continuous family's ‖m‖ and mean word-embedding row norm, of the
# trained and of the EMA weights) at every log step.

PER_SENTENCE_COLUMNS = ["cell_id", "sentence", "metric", "value"]

ARM_SEPARATOR = " / "  # arms sharing one trained model, named together ("absorb_train_only / v2")

TIMING_COLUMNS = [
    "suite", "preset", "dataset",
    "kind",  # one of TIMING_KINDS
    "arm",  # sample_batch: the arm; train_step and forward: the arms sharing the model, joined by " / "
    "gamma", "sweep",
    "label", "sampler", "steps", "nfe", "mbr",  # the sampling configuration (sample_batch rows)
    "batch_size",  # sequences per timed unit: the training batch (train_step) or the sampling batch
    "train_key",  # the model timed (one seed's model stands for its configuration)
    "device", "threads",
    "clock",  # what min_s, median_s and mbr_* count: "cpu" (the process's CPU seconds: a 1-thread pass on a CPU, where
    # they are the work, not the waits for other processes) or "wall" (GPU, or a multi-thread pass)
    "reps",  # timed repetitions after warm-up, interleaved with the other configurations
    "min_s", "median_s",  # seconds per unit, on `clock`
    "wall_min_s", "wall_median_s",  # the same units on the wall clock (equal to min_s, median_s when clock is wall)
    "extrapolated",  # True when a long chain was timed on fewer steps and scaled by steps (per-step cost is constant)
    "mbr_min_s", "mbr_median_s",  # sample_batch: seconds for the batch with all its MBR candidates, decoded as a
    # cell decodes them (stacked, several candidates per pass); equal to min_s/median_s without MBR; NaN otherwise
]
# train_step: seconds per optimizer step; forward: seconds per denoiser forward on a sampling
# batch (the floor of a sampler is nfe × forward); sample_batch: seconds to decode one batch with
# ONE candidate (min_s, median_s) and with all MBR candidates (mbr_min_s, mbr_median_s;
# outputs per second with MBR = batch_size / mbr_min_s).
TIMING_KINDS = ("train_step", "forward", "sample_batch")
