"""Metrics over k candidates for one source: self-BLEU, div-4 and the MBR choice (DiffuSeq's).

All BLEU here is :func:`~diffuseq.metrics.overlap.sentence_bleu` with one reference, and
``pairwise_bleu(c)[i, j]`` scores candidate ``i`` as the hypothesis against candidate ``j``. The
set metrics take that (k, k) matrix too, so evaluation computes it once per source for all of
them and for the MBR choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffuseq.metrics.overlap import Tokens, sentence_bleu
from diffuseq.metrics.registry import metric


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
def self_bleu(candidates: Sequence[Tokens], pairwise: np.ndarray | None = None) -> float:
    """Mean BLEU over pairs i < j, candidate i the hypothesis and j the reference (k >= 2)."""
    scores = pairwise_bleu(_at_least_two(candidates)) if pairwise is None else pairwise
    return float(scores[np.triu_indices(len(scores), k=1)].mean())


@metric("div4", scope="set", higher_is_better=None)
def div4(candidates: Sequence[Tokens], pairwise: np.ndarray | None = None) -> float:
    """Distinct 4-grams / all 4-grams, pooled over the candidates; 0 when none has a 4-gram."""
    grams = [tuple(c[i : i + 4]) for c in candidates for i in range(len(c) - 3)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mbr_select(candidates: Sequence[Tokens], pairwise: np.ndarray | None = None) -> int:
    """Index of the candidate with the highest summed BLEU against the others; ties → lowest."""
    scores = pairwise_bleu(candidates) if pairwise is None else pairwise
    return int(np.argmax(scores.sum(axis=1)))


def _at_least_two(candidates: Sequence[Tokens]) -> Sequence[Tokens]:
    if len(candidates) < 2:
        raise ValueError(f"self-BLEU needs at least 2 candidates, got {len(candidates)}")
    return candidates
