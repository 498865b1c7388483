"""Imported arms: a suite decodes a run directory instead of training a model (the suite field
``imported``, docs/design.md §3).

An entry ``NAME: {run: DIR, like: ARM}`` makes arm NAME's cells decode ``DIR`` (written by
``diffuseq import-official``, or any ``diffuseq train`` run) with arm ARM's ``sample`` section
and the ``samplers`` entries that apply to NAME; they are scored and reported like every cell.
The run fixes everything a training would: it is decoded on the one suite dataset it was trained
on (other datasets skip it), at the suite's first seed only (one training is one seed; the seed
gives its decoding seeds, as for every cell), and suite ``overrides`` do not apply. It has no
training curve and no timing rows. Its group key, and so its cell ids, carry :func:`run_identity`:
another checkpoint at the same path never reuses a result.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from diffuseq.checkpoint import EMA, checkpoint_dirs
from diffuseq.config import ConfigError, DataSpec, TrainSpec
from diffuseq.data import DataError, resolve_folder
from diffuseq.rundir import CONFIG, run_spec

ENV_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
FIX = "point it at a folder written by `diffuseq import-official CKPT --out DIR`"


@dataclass(frozen=True)
class ImportedRun:
    """A run directory as a suite decodes it."""

    path: Path  # absolute
    train: TrainSpec  # the spec its config.json holds
    identity: str  # run_identity(path)


def run_path(raw: str, base: Path, where: str) -> Path:
    """``raw`` with ``$VAR``/``${VAR}`` and ``~`` expanded, relative to ``base``; an unset variable is an error."""
    if unset := [a or b for a, b in ENV_VAR.findall(raw) if (a or b) not in os.environ]:
        raise ConfigError(f"{where}: {raw!r} needs ${unset[0]}, which is not set; export {unset[0]}=DIR "
                          "or give the path itself")
    path = Path(os.path.expandvars(raw)).expanduser()
    return path if path.is_absolute() else base / path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def run_identity(path: Path) -> str:
    """sha256 of what a decoding reads: the training spec, ``tokenizer.json`` and the newest
    checkpoint's EMA weights (the file :func:`diffuseq.rundir.load_model` loads)."""
    parts = [run_spec(path).key(), _sha256(path / "tokenizer.json"), _sha256(checkpoint_dirs(path)[-1] / EMA)]
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()


def open_run(raw: str, base: Path, where: str) -> ImportedRun:
    """The run directory an ``imported`` entry names, checked; errors name ``where`` and the fix."""
    path = run_path(raw, base, where)
    if not path.is_dir():
        raise ConfigError(f"{where}: no folder {path}; {FIX}")
    ckpts = checkpoint_dirs(path)
    if not (path / CONFIG).is_file() or not (path / "tokenizer.json").is_file() or not ckpts or not (ckpts[-1] / EMA).is_file():
        raise ConfigError(f"{where}: {path} is not a run directory (it needs {CONFIG}, tokenizer.json and "
                          f"checkpoints/step_*/{EMA}); {FIX}")
    try:
        spec = run_spec(path)
    except ConfigError as err:
        raise ConfigError(f"{where}: {str(err).splitlines()[0]}") from None
    return ImportedRun(path.resolve(), spec, run_identity(path))


def same_dataset(run: DataSpec, name: str, data_root: str | None) -> bool:
    """Whether a run trained on ``run`` was trained on the suite dataset ``name``: the same name,
    or the same folder (a path on one side, a name under the data root on the other)."""
    if run.dataset == name:
        return True
    if run.hf:
        return False
    try:
        return resolve_folder(run).resolve() == resolve_folder(DataSpec(dataset=name, data_root=data_root)).resolve()
    except DataError:
        return False


def check_unchanged(run: str, identity: str) -> None:
    """Refuse to decode a run directory whose files changed since the plan was made."""
    if run_identity(Path(run)) != identity:
        raise ConfigError(f"{run}: its weights, tokenizer or spec changed since the suite was planned; "
                          "run the suite again (its cells then get new ids)")
