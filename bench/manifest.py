"""What a published results directory needs besides its tables: ``MANIFEST.json`` (how to
rebuild it) and ``examples.md`` (what the outputs read like).

``MANIFEST.json`` holds the code version, the suite file's hash, the sha1 of every data file
used, the hash of every tokenizer vocabulary, the machine (CPU model, cores, torch and Python
versions), the executor (workers and torch threads each: bench/parallel.py), the wall time of
each phase summed over every run of the suite into this directory, and the date of the last run. ``examples.md`` shows, for the first sources of the
decoded split, the source, the reference and each configuration's seed-0 output (the MBR pick
where there is one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from bench.parallel import usable_cores
from bench.plan import Cell, Plan, TrivialCell
from bench.store import Store
from diffuseq.data import SPLITS, load_split, resolve_folder
from diffuseq.io import iter_jsonl, write_atomic
from diffuseq.metrics import clean
from diffuseq.synthetic import NAME as SYNTHETIC
from diffuseq.tokenizer import build_tokenizer
from diffuseq.version import code_version

MANIFEST = "MANIFEST.json"
EXAMPLES = "examples.md"


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def data_files(cells: list[Cell]) -> dict[str, str]:
    """``dataset/file`` → sha1 of every file the cells' datasets read (the embedded set: none)."""
    out = {}
    specs = {c.dataset: c.train.data for c in cells if not c.run}
    for c in cells:  # a dataset only imported runs decode: read as the first of them reads it
        specs.setdefault(c.dataset, c.train.data)
    for spec in specs.values():
        if spec.dataset == SYNTHETIC or spec.hf:
            continue
        folder = resolve_folder(spec)
        for split in SPLITS:
            for name in (f"{split}.jsonl", f"{split}.refs.jsonl"):
                if (folder / name).is_file():
                    out[f"{spec.dataset}/{name}"] = sha1(folder / name)
        for extra in spec.extra_train_files:
            out[str(extra)] = sha1(Path(extra).expanduser())
    return dict(sorted(out.items()))


def vocabularies(cells: list[Cell]) -> dict[str, str]:
    """Per (dataset, tokenizer settings), the sha1 of its vocabulary: the trained WordPiece
    vocabulary is deterministic and cached by corpus, so this rebuilds nothing that exists. An
    imported run's vocabulary is its own ``tokenizer.json``, named by its arm."""
    out = {f"{c.dataset} {c.arm} (imported)": sha1(Path(c.run) / "tokenizer.json") for c in cells if c.run}
    for data in {(c.dataset, c.train.data.tokenizer, c.train.data.vocab_size): c.train.data for c in cells
                 if not c.run}.values():
        pairs = load_split(data, "train")
        tok = build_tokenizer(data.tokenizer, data.vocab_size, [s for p in pairs for s in (p.src, p.trg)])
        name = f"{data.dataset} {data.tokenizer}" + (f"-{data.vocab_size}" if data.tokenizer in ("wordpiece", "words") else "")
        out[name] = hashlib.sha1(tok.tok.to_str().encode()).hexdigest()
    return dict(sorted(out.items()))


def write_manifest(store: Store, plan: Plan, phases: dict[str, float]) -> Path:
    """Write (or update) ``MANIFEST.json``: this run's phase wall times are added to the earlier runs'."""
    suite, cells = plan.suite, plan.cells
    path = store.root / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else {}
    walls = old.get("wall_s", {})
    walls = {k: round(walls.get(k, 0.0) + phases.get(k, 0.0), 1) for k in sorted({*walls, *phases})}
    manifest: dict[str, Any] = {
        "suite": suite.name,
        "suite_file_sha256": hashlib.sha256(Path(plan.source).read_bytes()).hexdigest(),
        "code_version": code_version(),
        "data_files_sha1": data_files(cells),
        "tokenizer_vocab_sha1": vocabularies(cells),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
                    "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()},
        "executor": {"kind": suite.executor.kind, "workers": suite.executor.workers, "threads": suite.threads},
        **({"imported_runs": {c.arm: {"run": c.run, "sha256": c.weights} for c in cells if c.run}}
           if any(c.run for c in cells) else {}),
        "wall_s": walls,
        "runs": old.get("runs", 0) + 1,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
    }
    write_atomic(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def _outputs(store: Store, cell_id: str, mbr: bool) -> list[dict] | None:
    """The rows of a cell's seed-0 sample file (its MBR file with MBR), or None if absent."""
    folder = store.samples_dir(cell_id)
    files = [folder / "samples.mbr.jsonl"] if mbr else sorted(folder.glob("samples.seed*.jsonl"))[:1]
    files += [folder / "samples.jsonl"]  # trivial cells
    for f in files:
        if f.is_file():
            return [row for _, row in iter_jsonl(f)]
    return None


def _text(raw: str) -> str:
    return " ".join(clean(raw)) or "(empty)"


def write_examples(store: Store, cells: list[Cell], trivial: list[TrivialCell], n: int = 10) -> Path | None:
    """``examples.md``: per dataset, the first ``n`` sources with every configuration's seed-0 output."""
    lines = ["# Examples", "",
             f"The first {n} sources of the decoded split: source, reference, and each configuration's output "
             "for seed 0 (the MBR pick where the configuration uses MBR), cleaned as the metrics see them.", ""]
    wrote = False
    for dataset in dict.fromkeys(c.dataset for c in cells):
        shown = [(f"{c.arm} {c.label}" + (f" MBR-{c.sampler.mbr}" if c.sampler.mbr > 1 else "")
                  + "".join(f" {k.split('.')[-1]}={v}" for k, v in c.sweep), c.cell_id, c.sampler.mbr > 1)
                 for c in cells if c.dataset == dataset and c.seed == 0]
        shown += [(t.arm, t.cell_id, False) for t in trivial if t.dataset == dataset]
        outputs = {name: rows for name, cell_id, mbr in shown if (rows := _outputs(store, cell_id, mbr))}
        if not outputs:
            continue
        wrote = True
        lines += [f"## {dataset}", ""]
        first = next(iter(outputs.values()))
        for i in range(min(n, len(first))):
            lines += [f"### {i + 1}", "", f"- **source:** {_text(first[i]['source'])}",
                      f"- **reference:** {_text(first[i]['reference'])}"]
            lines += [f"- `{name}`: {_text(rows[i]['recover'])}" for name, rows in outputs.items() if i < len(rows)]
            lines.append("")
    if not wrote:
        return None
    path = store.root / EXAMPLES
    write_atomic(path, "\n".join(lines).encode())
    return path
