"""Score one or more sample files (seeds) of one test set: per-sentence table and summary.

Quality metrics are computed on each run (sample file) separately; the summary reports their
means over sentences, then the mean over runs (``bleu``...), and each run's own (``per_run``).
With two or more runs it adds the set metrics over the runs' outputs for each source
(``self_bleu``, ``div4``, averaged over sources) and the quality of the MBR-selected output
(``mbr_bleu``...). Runs are a set: the result does not depend on their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from diffuseq.metrics.bertscore import BertScorer
from diffuseq.metrics.diversity import mbr_select, pairwise_bleu
from diffuseq.metrics.overlap import Tokens
from diffuseq.metrics.registry import METRICS, Metric
from diffuseq.metrics.samples import Sample, check_aligned
from diffuseq.metrics.text import clean

MBR_RUN = "mbr"
"""``run`` of the MBR-selected output's rows in :attr:`Evaluation.per_sentence`."""
SET_RUN = "set"
"""``run`` of the per-source set metrics (``self_bleu``, ``div4``)."""


@dataclass(frozen=True)
class Evaluation:
    """Scores of one evaluation.

    ``per_sentence`` is tidy, one row per (run, sentence, metric) with columns ``run`` (sample
    file, :data:`MBR_RUN` or :data:`SET_RUN`), ``sentence`` (the samples' ``index``), ``metric``
    and ``value`` (``bench/schema.py``'s per-sentence layout with ``run`` for ``cell_id``).
    ``summary`` maps metric → value; ``per_run`` maps run → metric → value; ``meta`` says how the
    numbers were made (runs, BERTScore model and layer, sacrebleu signature, clean-up). Scores are
    in [0, 1], corpus BLEU included; ``length`` is in tokens.
    """

    per_sentence: pd.DataFrame
    summary: dict[str, float]
    per_run: dict[str, dict[str, float]]
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``summary.json`` content."""
        return {"summary": self.summary, "per_run": self.per_run, "meta": self.meta}


def evaluate(
    runs: Mapping[str, Sequence[Sample]], scorer: BertScorer | None = None, *, detok: bool = True
) -> Evaluation:
    """Score aligned runs (see :func:`~diffuseq.metrics.samples.check_aligned`).

    Every registered metric (:mod:`diffuseq.metrics.registry`) of scope ``sentence`` and
    ``output`` per sentence, ``corpus`` per run; ``scorer`` adds those of scope ``model``
    (BERTScore). ``detok`` is :func:`~diffuseq.metrics.text.clean`'s.
    """
    check_aligned(runs)
    labels = sorted(runs)
    first = runs[labels[0]]
    refs = [[clean(r, detok=detok) for r in s.refs] for s in first]
    outputs = {label: [clean(s.hyp, detok=detok) for s in runs[label]] for label in labels}
    sets = [(c, pairwise_bleu(c)) for c in zip(*outputs.values(), strict=True)] if len(labels) > 1 else []
    if sets:
        outputs[MBR_RUN] = [outputs[labels[mbr_select(c, p)]][i] for i, (c, p) in enumerate(sets)]
    tables = {run: _sentence_scores(refs, hyps) for run, hyps in outputs.items()}
    if scorer is not None:
        for m in _registered("model"):
            for run, values in _model_scores(m, scorer, refs, outputs).items():
                tables[run][m.name] = values
    corpus = {m.name: {run: m.fn(refs, hyps) for run, hyps in outputs.items()} for m in _registered("corpus")}
    per_run = {run: _means(tables[run]) | {name: c[run][0] for name, c in corpus.items()} for run in outputs}
    summary = {m: float(np.mean([per_run[run][m] for run in labels])) for m in per_run[labels[0]]}
    if sets:
        tables[SET_RUN] = {m.name: np.array([m.fn(c, p) for c, p in sets]) for m in _registered("set")}
        summary |= _means(tables[SET_RUN]) | {f"mbr_{m}": v for m, v in per_run.pop(MBR_RUN).items()}
    meta = {
        "runs": labels,
        "n_sentences": len(first),
        "bertscore_model": scorer.name if scorer is not None else None,
        **{f"{name}_signature": c[labels[0]][1] for name, c in corpus.items()},
        "clean": "diffuseq-detok" if detok else "split-punctuation",
    }
    return Evaluation(_tidy(tables, [s.index for s in first]), summary, per_run, meta)


def _registered(scope: str) -> list[Metric]:
    return [m for m in METRICS.values() if m.scope == scope]


def _sentence_scores(refs: Sequence[Sequence[Tokens]], hyps: Sequence[Tokens]) -> dict[str, np.ndarray]:
    """(n,) arrays of the token-level metrics: against the references, then of the output alone."""
    scores = {m.name: np.array([m.fn(r, h) for r, h in zip(refs, hyps, strict=True)], dtype=float)
              for m in _registered("sentence")}
    return scores | {m.name: np.array([m.fn(h) for h in hyps], dtype=float) for m in _registered("output")}


def _model_scores(
    m: Metric, scorer: BertScorer, refs: Sequence[Sequence[Tokens]], outputs: Mapping[str, Sequence[Tokens]]
) -> dict[str, np.ndarray]:
    """A model metric of every run in one batched call, so every distinct sentence is embedded once."""
    ref_texts = [[" ".join(r) for r in rs] for rs in refs]
    hyps = [" ".join(h) for run in outputs for h in outputs[run]]
    values = m.fn(scorer, ref_texts * len(outputs), hyps)
    return dict(zip(outputs, np.split(values, len(outputs)), strict=True))


def _means(table: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {metric: float(values.mean()) for metric, values in table.items()}


def _tidy(tables: Mapping[str, Mapping[str, np.ndarray]], indices: Sequence[int]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"run": run, "sentence": indices, "metric": metric, "value": values})
        for run, table in tables.items()
        for metric, values in table.items()
    ]
    return pd.concat(frames, ignore_index=True)
