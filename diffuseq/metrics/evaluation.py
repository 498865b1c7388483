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
from diffuseq.metrics.diversity import set_scores
from diffuseq.metrics.overlap import Tokens, corpus_bleu, dist1, rouge_l, sentence_bleu
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

    ``scorer`` adds ``bertscore_f1``; ``detok`` is :func:`~diffuseq.metrics.text.clean`'s. Metrics
    per sentence: ``bleu``, ``rouge_l``, ``dist1``, ``length`` (tokens after cleaning; DiffuSeq
    counted ``split(" ")`` pieces, blanks left by removed specials included) and ``bertscore_f1``;
    per run: ``corpus_bleu`` (sacrebleu, see :func:`~diffuseq.metrics.overlap.corpus_bleu`).
    """
    check_aligned(runs)
    labels = sorted(runs)
    first = runs[labels[0]]
    refs = [[clean(r, detok=detok) for r in s.refs] for s in first]
    outputs = {label: [clean(s.hyp, detok=detok) for s in runs[label]] for label in labels}
    sets = [set_scores(cands) for cands in zip(*outputs.values(), strict=True)] if len(labels) > 1 else []
    if sets:
        outputs[MBR_RUN] = [outputs[labels[s.mbr_index]][i] for i, s in enumerate(sets)]
    tables = {run: _sentence_scores(refs, hyps) for run, hyps in outputs.items()}
    if scorer is not None:
        for run, f1 in _bertscores(scorer, refs, outputs).items():
            tables[run]["bertscore_f1"] = f1
    corpus = {run: corpus_bleu(refs, hyps) for run, hyps in outputs.items()}
    per_run = {run: _means(tables[run]) | {"corpus_bleu": corpus[run][0]} for run in outputs}
    summary = {m: float(np.mean([per_run[run][m] for run in labels])) for m in per_run[labels[0]]}
    if sets:
        tables[SET_RUN] = {"self_bleu": np.array([s.self_bleu for s in sets]),
                           "div4": np.array([s.div4 for s in sets])}
        summary |= _means(tables[SET_RUN]) | {f"mbr_{m}": v for m, v in per_run.pop(MBR_RUN).items()}
    meta = {
        "runs": labels,
        "n_sentences": len(first),
        "bertscore_model": scorer.name if scorer is not None else None,
        "corpus_bleu_signature": corpus[labels[0]][1],
        "clean": "diffuseq-detok" if detok else "split-punctuation",
    }
    return Evaluation(_tidy(tables, [s.index for s in first]), summary, per_run, meta)


def _sentence_scores(refs: Sequence[Sequence[Tokens]], hyps: Sequence[Tokens]) -> dict[str, np.ndarray]:
    """(n,) arrays of the token-level per-sentence metrics."""
    pairs = list(zip(refs, hyps, strict=True))
    return {
        "bleu": np.array([sentence_bleu(r, h) for r, h in pairs]),
        "rouge_l": np.array([rouge_l(r, h) for r, h in pairs]),
        "dist1": np.array([dist1(h) for h in hyps]),
        "length": np.array([len(h) for h in hyps], dtype=float),
    }


def _bertscores(
    scorer: BertScorer, refs: Sequence[Sequence[Tokens]], outputs: Mapping[str, Sequence[Tokens]]
) -> dict[str, np.ndarray]:
    """F1 per run in one batched call, so every distinct sentence is embedded once."""
    ref_texts = [[" ".join(r) for r in rs] for rs in refs]
    hyps = [" ".join(h) for run in outputs for h in outputs[run]]
    f1 = scorer.f1(hyps, ref_texts * len(outputs))
    return dict(zip(outputs, np.split(f1, len(outputs)), strict=True))


def _means(table: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {metric: float(values.mean()) for metric, values in table.items()}


def _tidy(tables: Mapping[str, Mapping[str, np.ndarray]], indices: Sequence[int]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"run": run, "sentence": indices, "metric": metric, "value": values})
        for run, table in tables.items()
        for metric, values in table.items()
    ]
    return pd.concat(frames, ignore_index=True)
