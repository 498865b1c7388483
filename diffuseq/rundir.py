"""A run directory's ``config.json``: reading it, what a re-run may change, and the record of it;
and the trained model it holds (:func:`load_model`).

Re-running ``diffuseq train`` in a run directory resumes the run its ``config.json`` describes.
The one change allowed is a larger ``optim.steps`` (more steps of the same model): training
continues from the last checkpoint under the new learning-rate schedule, and ``config.json``
records it under ``extended``. Any other difference is an error that lists the differing keys.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch import nn

from diffuseq.checkpoint import checkpoint_dirs, load_tensors, verify_checkpoint
from diffuseq.config import ConfigError, TrainSpec, format_validation_error
from diffuseq.family import make_family
from diffuseq.io import write_atomic
from diffuseq.tokenizer import TextTokenizer

log = logging.getLogger(__name__)
CONFIG = "config.json"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run; a missing or malformed file is a :class:`ConfigError`."""
    path = run_dir / CONFIG
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found, so {run_dir} is not a run directory; train one with `diffuseq train --run-dir`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable ({err}); delete the run directory or use another --run-dir") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("train"), dict):
        raise ConfigError(f"{path}: has no 'train' section; delete the run directory or use another --run-dir")
    return meta


def run_spec(run_dir: Path) -> TrainSpec:
    """The training spec a run directory holds."""
    try:
        return TrainSpec.model_validate(read_run_config(run_dir)["train"])
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(run_dir / CONFIG), TrainSpec)) from None


def load_model(run_dir: Path, ema: bool = True, step: int | None = None) -> tuple[nn.Module, TextTokenizer, TrainSpec]:
    """A trained model (EMA weights by default) from a run directory, in eval mode."""
    spec = run_spec(run_dir)
    tok = TextTokenizer.load(run_dir / "tokenizer.json")
    ckpts = checkpoint_dirs(run_dir)
    if not ckpts:
        raise FileNotFoundError(f"{run_dir}: no checkpoints yet (train first)")
    ckpt = ckpts[-1] if step is None else run_dir / "checkpoints" / f"step_{step:07d}"
    verify_checkpoint(ckpt)
    model = make_family(spec.model.family, spec).build(tok)
    model.load_state_dict(load_tensors(ckpt / ("ema.safetensors" if ema else "model.safetensors")))
    return model.eval(), tok, spec


def spec_diff(old: TrainSpec, new: TrainSpec) -> dict[str, tuple[Any, Any]]:
    """Dotted key → (old value, new value) for every field that differs."""
    a, b = _flat(old.model_dump(mode="json")), _flat(new.model_dump(mode="json"))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def check_rerun(run_dir: Path, spec: TrainSpec) -> TrainSpec | None:
    """Before training ``spec`` in ``run_dir``: the spec the run holds when ``spec`` extends its
    ``optim.steps``; None for a new run or the same spec; else a :class:`ConfigError`."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; give --run-dir a new folder or a previous run's")
    if not (run_dir / CONFIG).exists():
        return None
    old = run_spec(run_dir)
    diff = spec_diff(old, spec)
    if not diff:
        return None
    if list(diff) == ["optim.steps"] and spec.optim.steps > old.optim.steps:
        return old
    changes = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in diff.items())
    raise ConfigError(f"{run_dir / CONFIG}: this run was trained with another spec, differing in {changes}; "
                      "only optim.steps may grow in an existing run: restore the others or use another --run-dir")


def record_extension(run_dir: Path, old: TrainSpec, spec: TrainSpec, step: int) -> None:
    """Store the extended spec in ``config.json`` and note where the schedule changed."""
    meta = read_run_config(run_dir)
    meta["extended"] = [*meta.get("extended", []), {"at_step": step, "from_steps": old.optim.steps, "from_key": old.key()}]
    meta["train"], meta["key"] = spec.model_dump(mode="json"), spec.key()
    write_atomic(run_dir / CONFIG, json.dumps(meta, indent=2).encode())
    log.warning("%s: extending optim.steps from %d to %d; training continues at step %d under the new "
                "learning-rate schedule (recorded under 'extended' in %s)", run_dir, old.optim.steps,
                spec.optim.steps, step, CONFIG)
