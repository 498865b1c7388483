"""Loading seq2seq pairs and turning them into DiffuSeq's z = x ⊕ y tensors.

Sources, by ``DataSpec.dataset``:
- ``"default"``: the embedded synthetic set (:mod:`diffuseq.synthetic`), no files needed;
- a name: ``<data_root>/<name>/{train,valid,test}.jsonl``, the root from ``DataSpec.data_root``
  or the environment variable ``DIFFUSEQ_DATA_ROOT``;
- a folder path holding those files;
- with ``hf=True``: anything ``datasets.load_dataset`` accepts (a hub name or a local path),
  with ``src_column`` / ``trg_column`` naming the fields.

Every jsonl line is checked: a byte that is not UTF-8, malformed JSON, a missing field, a
non-string value or an empty split is a :class:`DataError` naming the file and line. A UTF-8 byte-order mark is accepted;
pairs with an empty source or target are kept and counted in one warning per file.

Layout of one example (as the official code builds it), with mask 0 on the source part:
``[CLS] x [SEP] [SEP] | [CLS] y [SEP] [PAD] …``. When ``len([CLS] x) + len([CLS] y) > seq_len - 3``
the longer side loses its last token until it fits (ties: both); such pairs are counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from diffuseq import synthetic
from diffuseq.config import ConfigError, DataSpec
from diffuseq.errors import UserError
from diffuseq.io import iter_jsonl
from diffuseq.tokenizer import TextTokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")
DATA_ROOT_ENV = "DIFFUSEQ_DATA_ROOT"


class DataError(UserError, ValueError):
    """Bad input data; the message names the file and line."""


@dataclass(frozen=True)
class Pair:
    src: str
    trg: str
    refs: tuple[str, ...] = ()  # extra references (multi-reference test sets), trg first


def read_jsonl(path: Path, src_key: str = "src", trg_key: str = "trg") -> list[Pair]:
    """Read and validate a DiffuSeq jsonl file (optional ``refs``: a list of strings)."""
    pairs, empty = [], []
    for lineno, row in iter_jsonl(path, DataError):
        for key in (src_key, trg_key):
            if key not in row:
                raise DataError(f"{path}:{lineno}: missing field {key!r} (fields: {sorted(row)})")
            if not isinstance(row[key], str):
                raise DataError(f"{path}:{lineno}: field {key!r} must be a string, got {type(row[key]).__name__}")
        refs = row.get("refs", ())
        if not isinstance(refs, list | tuple) or not all(isinstance(r, str) for r in refs):
            raise DataError(f"{path}:{lineno}: field 'refs' must be a list of strings")
        pairs.append(Pair(row[src_key], row[trg_key], tuple(refs)))
        if not (row[src_key].strip() and row[trg_key].strip()):
            empty.append(lineno)
    if not pairs:
        raise DataError(f"{path}: split is empty")
    if empty:
        log.warning("%s: %d of %d pairs have an empty %s or %s (lines %s); they are kept", path, len(empty),
                    len(pairs), src_key, trg_key, ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else ""))
    return pairs


def resolve_folder(spec: DataSpec) -> Path:
    """The folder holding ``{train,valid,test}.jsonl`` for a named or path dataset."""
    direct = Path(spec.dataset).expanduser()
    if direct.is_dir():
        return direct
    root = spec.data_root or os.environ.get(DATA_ROOT_ENV)
    if root is None:
        raise DataError(
            f"dataset {spec.dataset!r} is not a folder and no data root is set: pass "
            f"data.data_root=DIR (or --data-root) or set ${DATA_ROOT_ENV}"
        )
    folder = Path(root).expanduser() / spec.dataset
    if not folder.is_dir():
        known = sorted(p.name for p in Path(root).expanduser().glob("*") if p.is_dir())
        raise DataError(f"dataset {spec.dataset!r}: no folder {folder}; datasets under the root: {known}")
    return folder


def _load_hf(spec: DataSpec, split: str) -> list[Pair]:
    import datasets

    name = {"valid": "validation"}.get(split, split)
    ds = datasets.load_dataset(spec.dataset)
    if name not in ds and split in ds:
        name = split
    if name not in ds:
        raise DataError(f"{spec.dataset}: no split {name!r} (splits: {sorted(ds)})")
    table = ds[name]
    for col in (spec.src_column, spec.trg_column):
        if col not in table.column_names:
            raise DataError(f"{spec.dataset}[{name}]: no column {col!r} (columns: {table.column_names})")
    pairs = [Pair(s, t) for s, t in zip(table[spec.src_column], table[spec.trg_column], strict=True)]
    if not pairs:
        raise DataError(f"{spec.dataset}[{name}]: split is empty")
    return pairs


def load_split(spec: DataSpec, split: str) -> list[Pair]:
    """All pairs of one split (``train`` honours ``max_train_examples`` and ``extra_train_files``)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {SPLITS}")
    if spec.dataset == synthetic.NAME:
        pairs = [Pair(s, t) for s, t in synthetic.generate()[split]]
    elif spec.hf:
        pairs = _load_hf(spec, split)
    else:
        folder = resolve_folder(spec)
        refs_file = folder / f"{split}.refs.jsonl"
        path = refs_file if split != "train" and refs_file.is_file() else folder / f"{split}.jsonl"
        pairs = read_jsonl(path, spec.src_column, spec.trg_column)
    if split == "train":
        for extra in spec.extra_train_files:
            pairs += read_jsonl(Path(extra).expanduser(), spec.src_column, spec.trg_column)
        if spec.max_train_examples is not None:
            pairs = pairs[: spec.max_train_examples]
    return pairs


def split_source(spec: DataSpec, split: str) -> str:
    """Where a split comes from, for messages: its jsonl file, or the dataset's name."""
    if spec.dataset == synthetic.NAME or spec.hf:
        return f"dataset {spec.dataset!r} ({split})"
    return str(resolve_folder(spec) / f"{split}.jsonl")


def check_batch_fits(spec: DataSpec, n: int, batch_size: int) -> None:
    """A training split must hold at least one (global) batch."""
    if n < batch_size:
        raise DataError(f"{split_source(spec, 'train')}: training split has {n} examples, fewer than one batch of "
                        f"{batch_size}; lower the batch: --batch-size {n} (or --set optim.batch_size={n})")


@dataclass
class Encoded:
    """A tokenized split. ``input_ids``/``input_mask``: (N, seq_len) int64; mask 1 = target."""

    input_ids: torch.Tensor
    input_mask: torch.Tensor
    truncated: int  # pairs that lost tokens to fit seq_len

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def encode_pairs(tok: TextTokenizer, pairs: list[Pair], seq_len: int) -> Encoded:
    """Tokenize and lay out pairs as z = x ⊕ y with DiffuSeq's truncation policy (module doc)."""
    srcs = tok.encode_batch([p.src for p in pairs])
    trgs = tok.encode_batch([p.trg for p in pairs])
    ids = torch.full((len(pairs), seq_len), tok.pad_id, dtype=torch.long)
    mask = torch.ones((len(pairs), seq_len), dtype=torch.long)
    truncated = 0
    budget = seq_len - 3
    for i, (x, y) in enumerate(zip(srcs, trgs, strict=True)):
        x, y = [tok.cls_id, *x], [tok.cls_id, *y]
        if len(x) + len(y) > budget:
            truncated += 1
            # Pop from the longer side until it fits; equivalent to the official loop.
            while len(x) + len(y) > budget:
                if len(x) > len(y):
                    x.pop()
                elif len(y) > len(x):
                    y.pop()
                else:
                    x.pop()
                    y.pop()
        src = [*x, tok.sep_id, tok.sep_id]
        row = [*src, *y, tok.sep_id]
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(src)] = 0
    if truncated:
        log.info("truncated %d of %d pairs to fit seq_len=%d (longer side cut first)", truncated, len(pairs), seq_len)
    return Encoded(ids, mask, truncated)


class BatchOrder:
    """Deterministic epoch-wise shuffling: the batch at a given step depends only on (seed, step).

    That makes resume exact without saving any iterator state. Each DDP rank takes its own
    slice of the global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ConfigError(f"optim.batch_size: global batch {batch_size} must be divisible by the {world} processes")
        if n < batch_size:
            raise DataError(f"training split has {n} examples, fewer than one batch of {batch_size}")
        self.n, self.batch, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = n // batch_size
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        """Example indices of this rank's part of the global batch at ``step``."""
        epoch, b = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        glob = self._perm[b * self.batch : (b + 1) * self.batch]
        per = self.batch // self.world
        return glob[self.rank * per : (self.rank + 1) * per]
