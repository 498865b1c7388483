"""Reading JSON lines with errors that name the file and line; crash-safe file writing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def iter_jsonl(path: Path, error: type[Exception] = ValueError, torn_ok: bool = False
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line; raises ``error`` naming file:line
    for an unreadable file, malformed JSON or a line that is not an object. A UTF-8 byte-order
    mark at the start is skipped (as Python's ``utf-8-sig`` does). With ``torn_ok`` (files this
    code appends to, such as a training log), a line that is not JSON, a write cut short by a
    crash, is skipped instead."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
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
