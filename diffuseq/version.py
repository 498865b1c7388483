"""The code version recorded with every run and result."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from diffuseq import __version__


@functools.cache
def code_version() -> str:
    """``<package version>+<git describe>`` when run from a git checkout, else the package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__
