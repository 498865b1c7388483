"""Reading JSON lines with errors that name the file and line; crash-safe file writing."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def iter_jsonl(path: Path, error: type[Exception] = ValueError, torn_ok: bool = False
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line; raises ``error`` naming file:line
    for an unreadable file, a byte that is not UTF-8, malformed JSON or a line that is not an
    object. A UTF-8 byte-order mark at the start is skipped (as Python's ``utf-8-sig`` does).
    With ``torn_ok`` (files this code appends to, such as a training log), a line that is not
    JSON, a write cut short by a crash, is skipped instead."""
    try:
        raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        lines = raw.decode("utf-8").split("\n")  # JSON Lines: not str.splitlines, which also splits at U+2028, U+2029, \x85 (valid raw in a string)
    except UnicodeDecodeError as err:
        raise error(_not_utf8(path, raw, err.start)) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if torn_ok:
                continue
            raise error(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


def _not_utf8(path: Path, raw: bytes, offset: int) -> str:
    """The message for the byte at ``offset`` of ``raw`` that is not UTF-8: file, line, column."""
    lineno = raw.count(b"\n", 0, offset) + 1
    column = offset - raw.rfind(b"\n", 0, offset)
    return f"{path}:{lineno}: not UTF-8 (byte 0x{raw[offset]:02x} at column {column}); save the file as UTF-8"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on success it replaces ``path`` in
    one step (``os.replace`` in the same folder is atomic on POSIX), so readers see either the
    old file or the whole new one, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
