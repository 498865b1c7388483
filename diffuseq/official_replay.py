"""Decoding an imported official run from the official decoder's own noise, and counting the tokens
that agree with what that decoder wrote (docs/design.md §11).

An official decoder seeds torch with ``set_seed(seed2)``, draws one int64 for its test DataLoader's
worker base seed, then, batch after batch, ``randn_like`` draws of the batch's (b, L, d) shape: one
per batch for v2's DPM-Solver script (the start noise), 1 + T for v1's DDPM script (the start noise,
then one at every t, t = 0 included). :func:`official_generator` rebuilds that generator at any
batch. The official decoders write text only; with a word vocabulary (``--vocab FILE``) it is the
tokens joined by spaces with trailing ``[PAD]`` dropped, so :func:`official_ids` reads it back.

A decode folder holds what ``benchmarks/parity/make_fixture.py`` writes: ``decode_args.json``
(``seed2``, ``batch_size``), ``vocab.json``, ``official_samples.jsonl`` (``recover``,
``reference``, ``source`` per pair) and ``data/test.jsonl`` (the pairs decoded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from diffuseq.data import encode_pairs, read_jsonl
from diffuseq.family import sample_batch
from diffuseq.rundir import load_model
from diffuseq.sampling.base import build_sampler
from diffuseq.sampling.spec import SamplerSpec
from diffuseq.schedule import NoiseSchedule


def official_generator(seed2: int, draws: int, shape: tuple[int, ...]) -> torch.Generator:
    """Torch's CPU generator as an official decoder has it after ``draws`` ``randn`` of ``shape``."""
    g = torch.Generator().manual_seed(seed2)
    torch.empty((), dtype=torch.int64).random_(generator=g)
    for _ in range(draws):
        torch.randn(shape, generator=g)
    return g


def official_ids(text: str, vocab: dict[str, int], length: int) -> list[int]:
    """An official decoder's word-vocabulary text as ``length`` ids (trailing [PAD] restored)."""
    ids = [vocab[w] for w in text.split()]
    return ids + [vocab["[PAD]"]] * (length - len(ids))


def draws_per_batch(sample: SamplerSpec) -> int:
    """``randn`` draws per batch of the official decoder that ``sample`` stands for: v1's DDPM
    1 + its steps, v2's DPM-Solver 1."""
    return 1 + sample.steps if sample.sampler == "ddpm" else 1


@dataclass(frozen=True)
class Agreement:
    """Target tokens (and whole targets) of our decode equal to the official decoder's."""

    positions_agree: int
    positions: int
    rows_agree: int
    rows: int
    nfe: int  # model calls per sample of our decoder

    @property
    def share(self) -> float:
        return self.positions_agree / self.positions


def replay(run_dir: Path, decode_dir: Path, sample: SamplerSpec) -> Agreement:
    """Decode ``decode_dir``'s pairs with the imported run ``run_dir`` and ``sample`` (MBR off),
    each batch from the official decoder's generator; a ValueError when our layout of a pair
    (source, reference) differs from the official one."""
    args = json.loads((decode_dir / "decode_args.json").read_text())
    vocab = json.loads((decode_dir / "vocab.json").read_text())
    official = [json.loads(line) for line in (decode_dir / "official_samples.jsonl").open()]
    model, tok, spec = load_model(run_dir)
    enc = encode_pairs(tok, read_jsonl(decode_dir / "data" / "test.jsonl"), spec.data.seq_len)
    sampler = build_sampler(sample, NoiseSchedule(spec.diffusion.schedule, spec.diffusion.steps))
    draws, b = draws_per_batch(sample), args["batch_size"]
    agree = total = rows_agree = nfe = 0
    for batch, start in enumerate(range(0, len(official), b)):
        ids, mask = enc.input_ids[start : start + b], enc.input_mask[start : start + b]
        gen = official_generator(args["seed2"], batch * draws, (len(ids), spec.data.seq_len, spec.model.embed_dim))
        out, nfe = sample_batch(model, sampler, ids, mask, spec.diffusion.gamma, gen)
        for i, (row, inp, m, off) in enumerate(zip(out, ids, mask.bool(), official[start : start + b], strict=True)):
            n = int(m.sum())
            if (inp[~m].tolist() != official_ids(off["source"], vocab, len(inp) - n)
                    or inp[m].tolist() != official_ids(off["reference"], vocab, n)):
                raise ValueError(f"{decode_dir}: pair {start + i} is laid out otherwise than the official decoder's")
            same = int((row[m] == torch.tensor(official_ids(off["recover"], vocab, n))).sum())
            agree, total, rows_agree = agree + same, total + n, rows_agree + (same == n)
    return Agreement(agree, total, rows_agree, len(official), nfe)
