"""Suites that decode imported run directories (the suite field ``imported``, bench/imported.py):
the run is decoded and reported beside the trained arms without being trained, its identity is
in its cell ids, bad entries are one-line errors, and no id of a suite without it moves."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.__main__ import main as bench_main
from bench.plan import load_plan, make_plan
from bench.runner import run_suite
from bench.spec import Suite, suite_file
from diffuseq.config import ConfigError, read_yaml
from diffuseq.official import import_official, load_official_state

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "v2"
CKPT = FIXTURE / "ema_0.99_000300.pt"

# Every cell id, model key and trivial-row id of shipped suites, computed before `imported`
# existed (commit de1cd3a): sha256 of the sorted ids (first 16 hex), their count, and a few ids.
PINNED = {
    "smoke": {"digest": "599322823666772c", "n": 26, "first_cell": "baseline-default-s0-ddpm-100-5b278394",
             "first_key": "52256edb10d4", "trivial": "copy_source-default-44d22495"},
    "first_look": {"digest": "d70d1f15a6826246", "n": 23, "first_cell": "baseline-default-s0-ddpm-2000-5cb52c9e",
                  "first_key": "a247c0fd7f25", "trivial": "copy_source-default-f52014b0"},
    "all_arms": {"digest": "c459d062da8bbe30", "n": 65, "first_cell": "baseline-default-s0-ddpm-2000-6ad89e61",
             "first_key": "a04492ff4ea5", "trivial": "copy_source-default-450cd8f1"},
    "qqp_small": {"digest": "8de75435fae28739", "n": 97, "first_cell": "baseline-qqp-s0-ddpm-2000-acffb5f6",
                 "first_key": "38d1cc0edd1c", "trivial": "copy_source-qqp-b0180fd0"},
    "gamma_small": {"digest": "95989b22783f036e", "n": 44, "first_cell": "baseline-qqp-s0-ddpm-2000-acffb5f6",
                   "first_key": "38d1cc0edd1c", "trivial": "copy_source-qqp-b0180fd0"},
    "cross_dataset_small": {"digest": "17ef8ee213d30635", "n": 80, "first_cell": "baseline-qqp-s0-ddpm-2000-71255f57",
                           "first_key": "38d1cc0edd1c", "trivial": "copy_source-qqp-b0180fd0"},
    "precision": {"digest": "35625e93aed1e5a4", "n": 26, "first_cell": "baseline-default-s0-ddpm-2000-6ad89e61",
                 "first_key": "a04492ff4ea5", "trivial": "copy_source-default-450cd8f1"},
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_ids_of_suites_without_imported_runs_are_unchanged(name):
    file = suite_file(name)
    plan = make_plan(Suite.model_validate(read_yaml(file)), str(file))  # no data root needed: ids only
    ids = sorted([c.cell_id for c in plan.cells] + [g.train_key for g in plan.groups] + [t.cell_id for t in plan.trivial])
    got = {"digest": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16], "n": len(ids),
           "first_cell": plan.cells[0].cell_id, "first_key": plan.groups[0].train_key,
           "trivial": plan.trivial[0].cell_id if plan.trivial else None}
    assert got == PINNED[name]


def _import(out: Path, bias_shift: float = 0.0, tmp: Path | None = None) -> Path:
    """The v2 fixture imported as a run on the embedded data (its lm_head bias shifted, to change the weights)."""
    ckpt = CKPT
    if bias_shift:
        assert tmp is not None
        tmp.mkdir(parents=True, exist_ok=True)
        for f in ("training_args.json", "vocab.json"):
            shutil.copy(FIXTURE / f, tmp / f)
        sd = load_official_state(CKPT)
        torch.save(sd | {"lm_head.bias": sd["lm_head.bias"] + bias_shift}, tmp / CKPT.name)
        ckpt = tmp / CKPT.name
    import_official(ckpt, out, bert_cfg=FIXTURE / "bert_config.json", dataset="default")
    return out


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """A folder holding the imported fixture as ``official_v2``."""
    root = tmp_path_factory.mktemp("runs")
    _import(root / "official_v2")
    return root


TINY = {
    "name": "tiny_imported",
    "preset": "smoke",
    "arms": ["v2"],
    "imported": {"official": {"run": "${TEST_RUNS}/official_v2", "like": "v2"}},
    "seeds": [0],
    "metrics": ["bleu", "rouge_l", "dist1", "length"],
    "overrides": {"optim.steps": 10, "model.layers": 1, "model.hidden": 32, "model.ffn": 64, "optim.batch_size": 16},
    "curves": {"every": 10, "examples": 8},
    "decode": {"limit": 8, "batch_size": 8},
    "baselines": ["copy_source"],
    "timing": {"enabled": False},
    "executor": {"workers": 1},
}


def write_suite(folder: Path, **changes) -> Path:
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def test_an_imported_run_is_decoded_and_reported_beside_a_trained_arm(tmp_path, runs_dir, monkeypatch):
    monkeypatch.setenv("TEST_RUNS", str(runs_dir))
    path = write_suite(tmp_path)
    plan = load_plan(path)
    imported = [c for c in plan.cells if c.arm == "official"]
    assert len(imported) == 1 and imported[0].seed == 0 and imported[0].dataset == "default"
    key = imported[0].train_key
    assert key.startswith("imported-") and imported[0].run == str((runs_dir / "official_v2").resolve())
    results = tmp_path / "res"
    summary = run_suite(plan, results, progress=False)
    assert summary.failed == {} and summary.done == 3  # v2, official, copy_source
    table = pd.read_parquet(results / "table.parquet")
    assert set(table.arm) == {"v2", "official", "copy_source"}
    row = table[table.arm == "official"].set_index("metric").value
    assert 0 <= row["bleu"] <= 1 and row["train_steps"] == 300 and "train_wall_s" not in row
    assert "curve_bleu_final" not in row
    cell = table[table.arm == "official"].iloc[0]
    assert (cell.kind, cell.train_key, cell.arm_label) == ("model", key, "imported official_v2, decoded as v2")
    assert not (results / "models" / key).exists()  # nothing trained for it
    assert (results / "models" / plan.cells[0].train_key / "log.jsonl").is_file()  # v2 was
    curves = pd.read_parquet(results / "curves.parquet")
    assert set(curves.arm) == {"v2"}
    manifest = json.loads((results / "MANIFEST.json").read_text())
    assert manifest["imported_runs"]["official"]["sha256"] == imported[0].weights
    # the report takes an arm without a curve or timing rows
    assert bench_main(["report", "--results", str(results), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    v2_steps = int(table[(table.arm == "v2") & (table.metric == "train_steps")].value.iloc[0])
    assert f"- **Training steps:** {v2_steps}\n" in report  # the suite's own training only
    assert "- **Imported runs (decoded, not trained here):** `official`: 300 steps" in report
    # a re-run finds every cell done
    assert run_suite(load_plan(path), results, progress=False).done == 0


def test_other_weights_at_the_same_path_give_other_cell_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_RUNS", str(tmp_path / "runs"))
    _import(tmp_path / "runs" / "official_v2")
    path = write_suite(tmp_path, arms=[], baselines=[])
    stale = load_plan(path)
    before = {c.cell_id: c.train_key for c in stale.cells}
    shutil.rmtree(tmp_path / "runs" / "official_v2")
    _import(tmp_path / "runs" / "official_v2", bias_shift=0.5, tmp=tmp_path / "ckpt")
    after = {c.cell_id: c.train_key for c in load_plan(path).cells}
    assert len(before) == len(after) == 1 and set(before).isdisjoint(after)
    assert set(before.values()).isdisjoint(after.values())
    # a plan made before the change refuses to decode the new weights under the old ids
    failed = run_suite(stale, tmp_path / "res", progress=False).failed
    assert list(failed) == list(before) and "changed since the suite was planned" in next(iter(failed.values()))


def test_only_imported_arms_and_trivial_rows(tmp_path, runs_dir):
    """A suite of imported runs alone: no model to train, trivial rows laid out as the preset's."""
    path = write_suite(tmp_path, arms=[], imported={"official": {"run": str(runs_dir / "official_v2"), "like": "v2"}})
    plan = load_plan(path)
    assert [g.run for g in plan.groups] == [str((runs_dir / "official_v2").resolve())]
    assert plan.trivial[0].train.data.tokenizer == "wordpiece"  # the smoke preset's, not the import's


def test_a_relative_run_is_read_from_the_suite_files_folder(tmp_path, runs_dir, monkeypatch):
    shutil.copytree(runs_dir / "official_v2", tmp_path / "suites" / "runs" / "x")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    path = write_suite(tmp_path / "suites", imported={"official": {"run": "runs/x", "like": "v2"}})
    assert load_plan(path).cells[-1].run == str((tmp_path / "suites" / "runs" / "x").resolve())


@pytest.mark.parametrize(("changes", "message"), [
    ({"imported": {"official": {"run": "${TEST_RUNS_UNSET}/official_v2", "like": "v2"}}},
     r"suite\.yaml: imported\.official\.run: '\$\{TEST_RUNS_UNSET\}/official_v2' needs \$TEST_RUNS_UNSET, which is "
     r"not set; export TEST_RUNS_UNSET=DIR"),
    ({"imported": {"official": {"run": "${TEST_RUNS}/nowhere", "like": "v2"}}},
     r"suite\.yaml: imported\.official\.run: no folder .*nowhere; point it at a folder written by `diffuseq import-official"),
    ({"imported": {"official": {"run": "${TEST_RUNS}/empty", "like": "v2"}}},
     r"suite\.yaml: imported\.official\.run: .*empty is not a run directory \(it needs config\.json"),
    ({"imported": {"official": {"run": "${TEST_RUNS}/official_v2", "like": "v3"}}},
     r"suite\.yaml: imported\.official\.like: .*unknown arm 'v3'"),
    ({"imported": {"official": {"run": "${TEST_RUNS}/official_v2", "like": "v2", "optim": {"steps": 5}}}},
     r"suite\.yaml: imported\.official\.optim: unknown key 'optim'; valid keys in imported\.official: run, like, label"),
    ({"imported": {"v2": {"run": "${TEST_RUNS}/official_v2", "like": "v2"}}},
     r"suite\.yaml: .*imported names \['v2'\], which are also in arms"),
    ({"sweep": {"diffusion.gamma": [0.25, 0.5]}},
     r"suite\.yaml: .*sweep applies to every arm, but the imported arms \['official'\] are not trained; list the arms"),
    ({"sweep": {"diffusion.gamma": [0.25, 0.5]}, "sweep_arms": ["v2", "official"]},
     r"suite\.yaml: .*sweep_arms names the imported arm\(s\) \['official'\], which are decoded, not trained"),
    ({"imported": {"copy_source": {"run": "${TEST_RUNS}/official_v2", "like": "v2"}}},
     r"suite\.yaml: imported: .*'copy_source' cannot name an arm"),
    ({"datasets": ["other"]},
     r"suite\.yaml: imported\.official\.run: .*official_v2 was trained on dataset 'default', which is not among this "
     r"suite's datasets \['other'\]; add it to datasets, or re-import"),
    ({"imported": {"official": {"run": "${TEST_RUNS}/official_v2", "like": "ar_transformer"}}},
     r"suite\.yaml: samplers: sampler 'greedy' cannot decode arm 'official'"),
])
def test_bad_imported_entries_are_one_line_naming_the_file_and_key(tmp_path, runs_dir, monkeypatch, capsys,
                                                                   changes, message):
    monkeypatch.setenv("TEST_RUNS", str(runs_dir))
    monkeypatch.delenv("TEST_RUNS_UNSET", raising=False)
    (runs_dir / "empty").mkdir(exist_ok=True)
    other = tmp_path / "other"
    for split in ("train", "valid", "test"):
        other.mkdir(exist_ok=True)
        (other / f"{split}.jsonl").write_text('{"src": "a", "trg": "b"}\n')
    monkeypatch.chdir(tmp_path)  # `other` is a dataset folder here
    path = write_suite(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        load_plan(path)
    capsys.readouterr()
    assert bench_main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
