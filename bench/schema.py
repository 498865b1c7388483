"""The results table's columns: the one contract between the runner and the reporting layer.

A results directory holds three Parquet files, each consolidated from per-cell files:

- ``table.parquet``: one tidy row per (cell, metric) with every key in CELL_KEYS.
- ``curves.parquet``: periodic validation during training, one row per (model, step, metric).
- ``per_sentence.parquet``: per-sentence scores of each cell, for paired tests.
"""

from __future__ import annotations

TABLE = "table.parquet"
CURVES = "curves.parquet"
PER_SENTENCE = "per_sentence.parquet"

CELL_KEYS = [
    "suite",  # suite name
    "cell_id",  # unique id of (arm, dataset, seed, sampler, steps, overrides)
    "train_key",  # content hash of the training spec (shared by arms that share a model)
    "arm",  # e.g. baseline, hard_mask, absorb_train_only, v2, official_v2_sampling
    "dataset",  # e.g. default, qqp
    "seed",  # int
    "sampler",  # ddpm | ddim | dpm_solver++
    "steps",  # int, sampler steps
    "nfe",  # int, model evaluations per sample
    "mbr",  # int, MBR candidates per source (1 = no MBR)
    "batch_size",  # int, sampling batch size
    "preset",  # smoke | cpu | paper
    "gamma",  # float, discrete-noise γ used in training
    "code_version",  # git describe of the code
    "device",  # e.g. cpu, cuda:NVIDIA H100
    "bertscore_model",  # model used for BERTScore
    "wall_time_s",  # float, wall time of the whole cell (sampling + evaluation)
    "label",  # sampler variant label, e.g. dpm_solver++-10
    "sweep",  # JSON of the sweep point's training overrides ("{}" without a sweep)
]
TABLE_COLUMNS = [*CELL_KEYS, "metric", "value"]

# Metric names in table.parquet (quality averaged over sentences unless noted).
QUALITY_METRICS = ["bleu", "rouge_l", "bertscore_f1", "dist1", "length", "corpus_bleu"]
DIVERSITY_METRICS = ["self_bleu", "div4"]
# sampling only, at `batch_size`: sentences_per_s counts every sampled sequence, MBR candidates
# included (divide by `mbr` for outputs per second); sample_wall_s sums all candidates' time.
SPEED_METRICS = ["sentences_per_s", "sample_wall_s"]
TRAIN_METRICS = ["train_wall_s", "train_steps"]

CURVE_COLUMNS = [
    "suite", "train_key", "arm", "dataset", "seed", "preset", "gamma",
    "step", "wall_s", "metric", "value",
]
PER_SENTENCE_COLUMNS = ["cell_id", "sentence", "metric", "value"]
