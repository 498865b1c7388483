"""Checkpoints: written whole or not at all, verified, and never trusted blindly.

``checkpoints/step_XXXXXXX/`` holds ``model.safetensors``, ``ema.safetensors`` and ``state.pt``
(optimizer, timestep sampler, step, wall time). A checkpoint is written to a temporary folder,
flushed to disk, verified (sizes and headers) and only then renamed into place, so a corrupt one
is never the newest. Reading checks the same things first: a zero-byte or cut-short file is a
:class:`CheckpointError` naming it. When training resumes, a corrupt newest checkpoint is set
aside (renamed ``*.corrupt``) and training continues from the previous intact one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from diffuseq.errors import UserError

log = logging.getLogger(__name__)
MODEL, EMA, STATE = "model.safetensors", "ema.safetensors", "state.pt"
FIX = "re-run the training command: it resumes from the previous intact checkpoint and rewrites this one"


class CheckpointError(UserError):
    """A checkpoint file is missing, empty, cut short or unreadable; the message names it."""

    def __init__(self, path: Path, problem: str, fix: str = FIX):
        super().__init__(f"{path}: {problem}; {fix}")
        self.path, self.problem, self.fix = path, problem, fix

    def __reduce__(self) -> tuple:  # picklable across worker processes
        return type(self), (self.path, self.problem, self.fix)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoint folders, oldest first (temporary and set-aside ones excluded)."""
    return sorted((run_dir / "checkpoints").glob("step_*[0-9]"))


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, ema: dict[str, torch.Tensor],
                    opt: torch.optim.Optimizer, sampler_state: dict, wall: float, keep: int) -> Path:
    """Write, flush and verify ``step_<step>`` in a temporary folder, rename it into place, then
    delete all but the newest ``keep`` checkpoints."""
    final = run_dir / "checkpoints" / f"step_{step:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / MODEL)
    save_file({k: v.contiguous() for k, v in ema.items()}, tmp / EMA)
    torch.save({"step": step, "optimizer": opt.state_dict(), "sampler": sampler_state, "wall": wall}, tmp / STATE)
    for name in (MODEL, EMA, STATE):
        _fsync(tmp / name)
    try:
        verify_checkpoint(tmp)
    except CheckpointError as err:
        raise CheckpointError(err.path, f"{err.problem} right after writing it", "check free disk space") from None
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    _fsync(final.parent)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk, so a crash cannot leave it empty after a rename."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_checkpoint(ckpt: Path) -> None:
    """Check that each file is present and whole (sizes and headers); raises :class:`CheckpointError`."""
    for name in (MODEL, EMA):
        _check_safetensors(ckpt / name)
    _check_torch_file(ckpt / STATE)


def _size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(path, "missing") from None
    if size == 0:
        raise CheckpointError(path, "empty (0 bytes)")
    return size


def _check_safetensors(path: Path) -> None:
    """A safetensors file is an 8-byte header length, a JSON header, then exactly the data it lists."""
    size = _size(path)
    with path.open("rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n < 0 or 8 + n > size:
            raise CheckpointError(path, f"cut short inside its header ({size} bytes)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(path, "unreadable header") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "unreadable header")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    expected = 8 + n + max(ends, default=0)
    if size != expected:
        raise CheckpointError(path, f"cut short: {size} bytes, its header lists {expected}")


def _check_torch_file(path: Path) -> None:
    """``torch.save`` writes a zip archive, whose directory sits at the very end of the file."""
    size = _size(path)
    try:
        zipfile.ZipFile(path).close()
    except (zipfile.BadZipFile, OSError):
        raise CheckpointError(path, f"cut short or not a torch file ({size} bytes)") from None


def load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a verified safetensors file; a read failure names the file."""
    _check_safetensors(path)
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(path, f"unreadable ({err})") from None


def load_state(path: Path) -> dict:
    """The training state (``state.pt``) of a checkpoint; a read failure names the file."""
    _check_torch_file(path)
    try:
        return torch.load(path, weights_only=True)
    except (RuntimeError, OSError, EOFError) as err:
        raise CheckpointError(path, f"unreadable ({err})") from None


def set_aside_corrupt(run_dir: Path) -> Path | None:
    """Before resuming: rename corrupt checkpoints, newest first, to ``*.corrupt`` until an intact
    one is the newest; logs what it did and returns that checkpoint (None: start from step 0)."""
    for ckpt in reversed(checkpoint_dirs(run_dir)):
        try:
            verify_checkpoint(ckpt)
            return ckpt
        except CheckpointError as err:
            aside = ckpt.with_name(ckpt.name + ".corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            ckpt.rename(aside)
            rest = checkpoint_dirs(run_dir)
            then = f"resuming from {rest[-1].name}" if rest else "no checkpoint is left, training from step 0"
            log.warning("%s: %s; set aside as %s; %s", err.path, err.problem, aside.name, then)
    return None
