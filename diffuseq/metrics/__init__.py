"""Evaluation metrics with DiffuSeq's conventions (BLEU, ROUGE-L, BERTScore as the papers computed them).

``text``: :func:`clean`, the tokens every metric sees. ``overlap``: sentence BLEU, ROUGE-L, dist-1
and sacrebleu corpus BLEU. ``diversity``: self-BLEU, div-4 and MBR over several samples per
source. ``bertscore``: offline BERTScore F1. ``samples``: sample-file reading and alignment.
``evaluation``: :func:`evaluate`, the per-sentence table and summary of one or more runs.
``registry``: every metric by name (:func:`metric`, :data:`METRICS`); importing this package
registers the built-in ones.
"""

from diffuseq.metrics.bertscore import BertScorer, bertscore, default_model_path
from diffuseq.metrics.diversity import (
    div4,
    mbr_select,
    pairwise_bleu,
    self_bleu,
)
from diffuseq.metrics.evaluation import Evaluation, evaluate
from diffuseq.metrics.overlap import corpus_bleu, dist1, length, rouge_l, sentence_bleu
from diffuseq.metrics.registry import METRICS, Metric, metric, metrics
from diffuseq.metrics.samples import Sample, SampleFileError, load_runs, read_samples
from diffuseq.metrics.text import clean

__all__ = [
    "METRICS",
    "BertScorer",
    "Evaluation",
    "Metric",
    "Sample",
    "SampleFileError",
    "bertscore",
    "clean",
    "corpus_bleu",
    "default_model_path",
    "dist1",
    "div4",
    "evaluate",
    "length",
    "load_runs",
    "mbr_select",
    "metric",
    "metrics",
    "pairwise_bleu",
    "read_samples",
    "rouge_l",
    "self_bleu",
    "sentence_bleu",
]
