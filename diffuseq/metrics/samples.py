"""Sample files (``diffuseq sample`` output) and external multi-reference files: read and check.

A sample file is jsonl, one object per line::

    {"index": 0, "source": "[CLS] how do i ... [SEP]", "reference": "...", "recover": "...",
     "refs": ["...", ...]}                                  # "refs" optional; replaces "reference"

Several files (seeds) of one evaluation must line up: same length, and on every line the same
``index``, source and references. A multi-reference file (ASSET's ``test.refs.jsonl``) is
``{"src": ..., "trg": ..., "refs": [...]}`` per line; sample ``index`` i takes its i-th line
(0-based, blank lines skipped). Every problem raises :class:`SampleFileError` naming the file and the 1-based line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from diffuseq.io import iter_jsonl
from diffuseq.metrics.text import clean

_REQUIRED = {"index": int, "source": str, "reference": str, "recover": str}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class SampleFileError(ValueError):
    """A sample or reference file is missing, malformed, or does not line up with the others."""


@dataclass(frozen=True)
class Sample:
    """One line of a sample file: the hypothesis ``hyp`` and its references, as raw strings."""

    index: int
    source: str
    refs: tuple[str, ...]
    hyp: str


def read_samples(path: Path) -> list[Sample]:
    """All samples of one file, in file order (at least one)."""
    samples = [_sample(path, lineno, row) for lineno, row in _jsonl(path)]
    if not samples:
        raise SampleFileError(f"{path}: no samples")
    return samples


def load_runs(
    paths: Iterable[Path], refs_path: Path | None = None, limit: int | None = None
) -> dict[str, list[Sample]]:
    """Sample files by path (each file once, sorted), with ``refs_path``'s references if given.

    A sample file must cover the whole reference file, unless ``limit`` (``--limit``) asks for a
    prefix: then only the first ``limit`` lines of every file are scored.
    """
    runs = {str(p): read_samples(p) for p in sorted(set(map(Path, paths)), key=_natural)}
    if limit is not None:
        runs = {label: _prefix(label, samples, limit) for label, samples in runs.items()}
    if refs_path is not None:
        refs = read_refs(refs_path)
        _check_covers(runs, refs, refs_path, limit)
        runs = {label: attach_refs(samples, refs, refs_path) for label, samples in runs.items()}
    check_aligned(runs)
    return runs


def _prefix(label: str, samples: list[Sample], limit: int) -> list[Sample]:
    if len(samples) < limit:
        raise SampleFileError(f"{label}: {len(samples)} lines, fewer than --limit {limit}; lower --limit")
    return samples[:limit]


def _check_covers(runs: Mapping[str, Sequence[Sample]], refs: Sequence[References], refs_path: Path,
                  limit: int | None) -> None:
    """Refuse to score a silent prefix: each run covers every reference line, or ``limit`` of them."""
    if limit is not None:
        if len(refs) < limit:
            raise SampleFileError(f"{refs_path}: {len(refs)} lines, fewer than --limit {limit}; lower --limit")
        return
    for label, samples in runs.items():
        if len(samples) < len(refs):
            raise SampleFileError(
                f"{label}: {len(samples)} lines, but {refs_path} has {len(refs)}; sample the whole split, "
                f"or pass --limit {len(samples)} to score only the first {len(samples)}"
            )


def check_aligned(runs: Mapping[str, Sequence[Sample]]) -> None:
    """Raise unless all runs have the same length and, per line, index, source and references."""
    if not runs:
        raise SampleFileError("no sample files given")
    first, *others = sorted(runs)
    for label in others:
        if len(runs[label]) != len(runs[first]):
            raise SampleFileError(f"{label}: {len(runs[label])} lines, but {first} has {len(runs[first])}")
        for lineno, (a, b) in enumerate(zip(runs[first], runs[label], strict=True), start=1):
            field = _first_difference(a, b)
            if field:
                raise SampleFileError(
                    f"{label}:{lineno} (index {b.index}): {field} differs from {first}:{lineno} "
                    f"(index {a.index}); sample files must come from the same test set in the same order"
                )


@dataclass(frozen=True)
class References:
    """One line of a multi-reference file."""

    line: int
    source: str
    refs: tuple[str, ...]


def read_refs(path: Path) -> list[References]:
    """The non-blank lines of a multi-reference file."""
    return [_refs_row(path, lineno, row) for lineno, row in _jsonl(path)]


def attach_refs(samples: Sequence[Sample], refs: Sequence[References], refs_path: Path) -> list[Sample]:
    """Samples with references replaced by those of ``refs[sample.index]``.

    The sources must agree up to BERT tokenization, punctuation and ``[UNK]``; the sample's may be
    a prefix of the file's (sources are truncated to the model's sequence length).
    """
    out = []
    for sample in samples:
        if not 0 <= sample.index < len(refs):
            raise SampleFileError(f"{refs_path}: has {len(refs)} lines, no line for sample index {sample.index}")
        row = refs[sample.index]
        mine, theirs = _source_key(sample.source), _source_key(row.source)
        if not theirs.startswith(mine) or (theirs and not mine):
            raise SampleFileError(
                f"{refs_path}:{row.line}: source {row.source!r} does not match sample index "
                f"{sample.index} source {sample.source!r}"
            )
        out.append(replace(sample, refs=row.refs))
    return out


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return iter_jsonl(path, SampleFileError)


def _sample(path: Path, lineno: int, row: dict[str, Any]) -> Sample:
    for key, kind in _REQUIRED.items():
        if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
            raise SampleFileError(f"{path}:{lineno}: needs {key!r} ({kind.__name__}), got {row.get(key)!r}")
    refs = (row["reference"],) if "refs" not in row else _string_list(path, lineno, row["refs"])
    return Sample(row["index"], row["source"], refs, row["recover"])


def _refs_row(path: Path, lineno: int, row: dict[str, Any]) -> References:
    if not isinstance(row.get("src"), str):
        raise SampleFileError(f"{path}:{lineno}: needs 'src' (str), got {row.get('src')!r}")
    return References(lineno, row["src"], _string_list(path, lineno, row.get("refs")))


def _string_list(path: Path, lineno: int, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SampleFileError(f"{path}:{lineno}: 'refs' must be a non-empty list of strings, got {value!r}")
    return tuple(value)


def _first_difference(a: Sample, b: Sample) -> str | None:
    """Name of the first field on which two lines disagree (text compared after :func:`clean`)."""
    if a.index != b.index:
        return "index"
    if not _same_text((a.source,), (b.source,)):
        return "source"
    if not _same_text(a.refs, b.refs):
        return "reference"
    return None


def _same_text(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return a == b or [clean(t) for t in a] == [clean(t) for t in b]


def _source_key(text: str) -> str:
    """Letters and digits of the cleaned text, ``[UNK]`` dropped: robust to tokenization."""
    return _NOT_ALNUM.sub("", "".join(t for t in clean(text, detok=False) if t != "[UNK]"))


def _natural(path: Path) -> list:
    """Sort key that orders seed2 before seed10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]
