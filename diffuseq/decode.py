"""Decoding encoded sources with a trained model: batches, seeds and stacked MBR candidates.

A :class:`Decoding` holds what a decode needs (model, tokenizer, run spec, sampler spec, batch
size); :meth:`Decoding.generate` decodes all sources in memory (``GenerationResult``), and
:mod:`diffuseq.samples` writes a run directory's sample files from :meth:`Decoding.batches`.
Each batch goes through the decoder that the model's family hands out
(:meth:`~diffuseq.family.Family.decoder`).

Each batch is sampled with its own generator seeded from (seed, batch index), so a batch's
tokens do not depend on which batches ran before it. That makes decoding resumable at batch
granularity with output identical to an uninterrupted run.

Several seeds (MBR candidates) are decoded together: each batch once for k seeds, as one
stacked batch of k·b rows in which seed j's candidate draws its noise from its own generator
(:class:`~diffuseq.sampling.base.SamplingContext`), so every seed's tokens are those of a pass
of its own, bit for bit; only the per-step overhead is shared. k is chosen from the model's
width (:func:`candidates_per_pass`) and never changes a result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn
from tqdm import tqdm

from diffuseq.config import TrainSpec
from diffuseq.family import Family, make_family
from diffuseq.model import Denoiser
from diffuseq.sampling.spec import SamplerSpec
from diffuseq.tokenizer import TextTokenizer

# Stacked candidates per pass are limited so that the widest activation (k·b·L·width floats)
# stays under this many elements (512 MiB in float32).
STACKED_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class BatchResult:
    index: int  # batch number
    ids: Tensor  # (k, b, L) token ids of the k seeds' candidates; source positions are the input ids
    nfe: int
    wall_s: float  # the whole batch, all k candidates


@dataclass(frozen=True)
class GenerationResult:
    ids: Tensor  # (N, L) token ids; source positions are the input ids
    recover: list[str]  # DiffuSeq-style raw text of each target part (specials kept)
    nfe: int  # model evaluations per sample
    wall_s: float  # sampling + rounding time

    @property
    def sentences_per_s(self) -> float:
        return len(self.recover) / self.wall_s if self.wall_s > 0 else float("inf")


def batch_seed(seed: int, batch: int) -> int:
    return seed * 1_000_003 + batch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def candidates_per_pass(model: Denoiser, batch_size: int, seq_len: int, seeds: int) -> int:
    """How many seeds' candidates to stack in one pass: all of them while the widest activation
    (b·L·max(FFN, 3·hidden) floats per candidate) fits in :data:`STACKED_ELEMENTS`."""
    width = max(model.spec.ffn, 3 * model.spec.hidden)
    return max(1, min(seeds, STACKED_ELEMENTS // (batch_size * seq_len * width)))


def target_text(tok: TextTokenizer, ids: Tensor, mask: Tensor) -> str:
    """Raw text of the target part of one row (mask 1), specials kept, as DiffuSeq writes it."""
    return tok.tokens(ids[mask.bool()].tolist())


@dataclass(frozen=True)
class Decoding:
    """A trained model (eval mode, on the device it decodes on) and how to decode it."""

    model: nn.Module
    tok: TextTokenizer
    train: TrainSpec  # the run's spec: the model's family and diffusion
    spec: SamplerSpec
    batch_size: int  # sources per batch
    progress: bool = False  # a progress bar over the batches

    @cached_property
    def family(self) -> Family:
        return make_family(self.train.model.family, self.train)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def batches(self, input_ids: Tensor, input_mask: Tensor, seed: int | Sequence[int],
                skip: frozenset[int] = frozenset()) -> Iterator[BatchResult]:
        """Sample every batch of (input_ids, input_mask) (N, L) not in ``skip``, in order; each
        batch seeded by (seed, index), several seeds decoded as one stacked batch."""
        seeds = [seed] if isinstance(seed, int) else list(seed)
        device, size = self.device, self.batch_size
        decode = self.family.decoder(self.model, self.spec)
        n_batches = -(-len(input_ids) // size)
        todo = [b for b in range(n_batches) if b not in skip]
        for b in tqdm(todo, total=n_batches, initial=n_batches - len(todo), disable=not self.progress,
                      desc=f"{self.spec.sampler} seed {','.join(map(str, seeds))}", dynamic_ncols=True):
            sl = slice(b * size, (b + 1) * size)
            gens = [torch.Generator(device).manual_seed(batch_seed(s, b)) for s in seeds]
            t0 = time.perf_counter()
            ids, nfe = decode(input_ids[sl].to(device), input_mask[sl].to(device), gens if len(gens) > 1 else gens[0])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            yield BatchResult(b, ids.cpu().view(len(seeds), -1, ids.shape[1]), nfe, time.perf_counter() - t0)

    def generate(self, input_ids: Tensor, input_mask: Tensor, seed: int) -> GenerationResult:
        """Sample all rows of (input_ids, input_mask) (N, L) with one seed."""
        batches = list(self.batches(input_ids, input_mask, seed))
        ids = torch.cat([b.ids[0] for b in batches])
        recover = [target_text(self.tok, row, m) for row, m in zip(ids, input_mask, strict=True)]
        return GenerationResult(ids, recover, batches[0].nfe, sum(b.wall_s for b in batches))
