"""Trivial outputs that need no model: what a real-data result has to beat.

On QQP, copying the source scores about 0.23 BLEU with DiffuSeq's conventions, within 0.01 of
the papers' models; a result means little unless it is shown next to these rows.

- ``copy_source``: the source itself as the output.
- ``nearest_train_target``: the target of the training pair whose source is most similar to the
  test source under TF-IDF cosine similarity (word uni- and bigrams, sublinear tf; ties go to
  the earlier training pair), i.e. retrieval with no learning beyond word statistics.

Each takes the training pairs and the test sources and returns one output string per source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from diffuseq.data import Pair

Baseline = Callable[[Sequence[Pair], Sequence[str]], list[str]]
BASELINES: dict[str, Baseline] = {}
LABELS: dict[str, str] = {}


def baseline(name: str, label: str) -> Callable[[Baseline], Baseline]:
    """Register a trivial output under ``name`` with a one-line ``label`` for reports."""

    def register(fn: Baseline) -> Baseline:
        BASELINES[name], LABELS[name] = fn, label
        return fn

    return register


@baseline("copy_source", "copy_source: the source itself as the output (no model)")
def copy_source(train: Sequence[Pair], sources: Sequence[str]) -> list[str]:
    return list(sources)


@baseline("nearest_train_target", "nearest_train_target: the target of the most similar training source, TF-IDF (no model)")
def nearest_train_target(train: Sequence[Pair], sources: Sequence[str], chunk: int = 512) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    index = vec.fit_transform([p.src for p in train])  # rows L2-normalised: dot product = cosine
    out: list[str] = []
    for i in range(0, len(sources), chunk):
        sims = vec.transform(sources[i : i + chunk]) @ index.T
        best = np.asarray(sims.argmax(axis=1)).ravel()  # the first maximum: the earlier pair
        out += [train[j].trg for j in best]
    return out
