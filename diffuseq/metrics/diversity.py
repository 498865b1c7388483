"""Metrics over k candidates for one source: self-BLEU, div-4 and the MBR choice (DiffuSeq's).

All BLEU here is :func:`~diffuseq.metrics.overlap.sentence_bleu` with one reference, and
``pairwise_bleu(c)[i, j]`` scores candidate ``i`` as the hypothesis against candidate ``j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffuseq.metrics.overlap import Tokens, sentence_bleu
from diffuseq.metrics.registry import metric


@dataclass(frozen=True)
class SetScores:
    """The set metrics of one source's candidates, from one pairwise BLEU matrix."""

    self_bleu: float
    div4: float
    mbr_index: int


def pairwise_bleu(candidates: Sequence[Tokens]) -> np.ndarray:
    """(k, k) matrix: entry (i, j) = BLEU of hypothesis ``candidates[i]`` against ``candidates[j]``;
    the diagonal is 0 (a candidate never votes for itself)."""
    k = len(candidates)
    scores = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                scores[i, j] = sentence_bleu([candidates[j]], candidates[i])
    return scores


@metric("self_bleu", scope="set", higher_is_better=None)
def self_bleu(candidates: Sequence[Tokens]) -> float:
    """Mean BLEU over pairs i < j, candidate i the hypothesis and j the reference (k >= 2)."""
    return _mean_upper(pairwise_bleu(_at_least_two(candidates)))


@metric("div4", scope="set", higher_is_better=None)
def div4(candidates: Sequence[Tokens]) -> float:
    """Distinct 4-grams / all 4-grams, pooled over the candidates; 0 when none has a 4-gram."""
    grams = [tuple(c[i : i + 4]) for c in candidates for i in range(len(c) - 3)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mbr_select(candidates: Sequence[Tokens]) -> int:
    """Index of the candidate with the highest summed BLEU against the others; ties → lowest."""
    return int(np.argmax(pairwise_bleu(candidates).sum(axis=1)))


def set_scores(candidates: Sequence[Tokens]) -> SetScores:
    """Self-BLEU, div-4 and the MBR index at the cost of one pairwise matrix (k >= 2)."""
    scores = pairwise_bleu(_at_least_two(candidates))
    return SetScores(_mean_upper(scores), div4(candidates), int(np.argmax(scores.sum(axis=1))))


def _mean_upper(scores: np.ndarray) -> float:
    return float(scores[np.triu_indices(len(scores), k=1)].mean())


def _at_least_two(candidates: Sequence[Tokens]) -> Sequence[Tokens]:
    if len(candidates) < 2:
        raise ValueError(f"self-BLEU needs at least 2 candidates, got {len(candidates)}")
    return candidates
