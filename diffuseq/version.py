"""The code version recorded with every run and result."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from diffuseq import __version__


def _describe() -> str:
    if named := os.environ.get("DIFFUSEQ_CODE_VERSION"):  # a copy of the tree without its .git
        return f"{__version__}+{named}"
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


_AT_IMPORT = _describe()


def code_version() -> str:
    """``<package version>+<git describe>`` when run from a git checkout (or ``+$DIFFUSEQ_CODE_VERSION``
    where that is set, for a copy of the tree without git), else the package version;
    read when this process imported the code, so that a checkout edited or moved while a long run
    goes on does not change what the run records."""
    return _AT_IMPORT
