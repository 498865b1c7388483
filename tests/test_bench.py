"""The harness: suite validation, expansion, dedup, crash-safe resume, concurrent runners, smoke."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import bench.worker as worker
from bench.__main__ import main as bench_main
from bench.parallel import LARGE_MODEL_PARAMS, model_size, resolve
from bench.plan import Plan, load_plan
from bench.runner import run_suite
from bench.schema import CELL_KEYS, CellRecord
from bench.spec import ExecutorSpec
from bench.status import cell_status
from bench.store import Store
from bench.timing import _calls_per_unit, _seconds, config_groups, distinct_decoders
from diffuseq.config import ConfigError
from diffuseq.metrics import clean

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "bench" / "suites"

TINY = {
    "name": "tiny",
    "preset": "smoke",
    "arms": ["hard_mask", "absorb_train_only", "v2"],
    "seeds": [0],
    "metrics": ["bleu", "rouge_l", "dist1", "length", "corpus_bleu"],
    "overrides": {"optim.steps": 20, "model.layers": 1, "model.hidden": 32, "model.ffn": 64, "optim.batch_size": 16},
    "curves": {"every": 10, "examples": 8},
    "decode": {"limit": 12, "batch_size": 8},
    "baselines": [],  # trivial rows and the timing pass have tests of their own
    "timing": {"enabled": False},
    "executor": {"workers": 1},  # in this process, so that a test can patch the worker (auto would spawn 2 here)
}


def write_suite(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, r"suite\.yaml: colour: unknown key 'colour'; valid keys: name, description, preset, arms,"),
        ({"samplers": [{"step": 5}]}, r"suite\.yaml: samplers\.0\.step: unknown key 'step' \(did you mean 'steps'\?\); "
                                      r"valid keys in samplers\.0: arms, label, steps, set$"),
        ({"decode": {"limits": 5}}, r"decode\.limits: unknown key 'limits' \(did you mean 'limit'\?\); valid keys in decode: split,"),
        ({"seeds": "zero"}, r"suite\.yaml: seeds: Input should be a valid (tuple|array)"),
        ({"preset": "tiny"}, r"suite\.yaml: preset: .*unknown preset 'tiny'; choose one of \[.*'qqp_cpu'"),
        ({"arms": ["v2", "v3"]}, r"suite\.yaml: arms: .*unknown arm 'v3'.*known arms: \[.*'v2'"),
        ({"datasets": ["nope"]}, r"suite\.yaml: datasets\.0: .*'nope'"),
        ({"samplers": [{"set": {"sampler": "euler"}}]}, r"samplers\.0 \(arm hard_mask\): sampler: Input should be 'ddim', 'ddpm', 'dpm_solver\+\+', 'unmask', 'greedy' or 'beam'"),
        ({"samplers": [{"set": {"sampler": "unmask"}}]}, r"sampler 'unmask' cannot decode arm 'hard_mask' \(a continuous model\)"),
        ({"samplers": [{"arms": ["baseline"]}]}, r"samplers\.0\.arms names \['baseline'\], which are not in this suite's arms"),
        ({"samplers": [{"set": {"sampler": "ddpm", "order": 2}}]}, r"order applies only to sampler 'dpm_solver\+\+'"),
        ({"overrides": {"model.layerz": 2}}, r"overrides/sweep \(arm hard_mask\): model\.layerz: unknown key 'layerz' "
                                             r"\(did you mean 'layers'\?\); valid keys in model: family, layers, hidden,"),
        ({"metrics": ["bleu", "meteor"]}, r"metrics: .*unknown metric\(s\) \['meteor'\]"),
        ({"decode": {"limit": 0}}, r"decode\.limit: Input should be greater than or equal to 1"),
        ({"seeds": [0, -1]}, r"suite\.yaml: seeds: .*negative seed\(s\) \[-1\]; seeds must be 0 or more"),
        ({"seeds": [0, 3, 3]}, r"suite\.yaml: seeds: .*duplicate seed 3; list each seed once"),
        ({"arms": ["v2", "hard_mask", "v2"]}, r"suite\.yaml: arms: .*duplicate arm v2; list each arm once"),
        ({"overrides": {"model.init": "plm", "model.hidden": 384, "model.embed_dim": 384, "model.heads": 4}},
         r"suite\.yaml: arm hard_mask: model\.init plm starts from all-MiniLM-L6-v2 \(num_attention_heads 12\): "
         r"set model\.heads=12, not 4"),
    ],
)
def test_bad_suites_name_file_key_and_choices(tmp_path, monkeypatch, changes, message):
    monkeypatch.setenv("DIFFUSEQ_DATA_ROOT", str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        load_plan(write_suite(tmp_path, **changes))


@pytest.fixture
def data_root(monkeypatch, tmp_path) -> Path:
    """$DIFFUSEQ_DATA_ROOT with the real sets the shipped suites name (stand-in folders in a fresh clone)."""
    names = ("qqp", "commonsense_conversation_resplit", "iwslt14_small", "asset", "squad_qg", "mrpc")
    root = Path(os.environ.get("DIFFUSEQ_DATA_ROOT", tmp_path))
    if not all((root / n).is_dir() for n in names):  # a fresh clone: validate against stand-in folders
        root = tmp_path
        for n in names:
            (root / n).mkdir()
            for split in ("train", "valid", "test"):
                (root / n / f"{split}.jsonl").write_text('{"src": "a", "trg": "b"}\n')
    monkeypatch.setenv("DIFFUSEQ_DATA_ROOT", str(root))
    return root


def test_shipped_suites_validate(data_root):
    counts = {}
    for path in sorted(SUITES.glob("*.yaml")):
        plan = load_plan(path)
        counts[plan.suite.name] = (len(plan.cells), len(plan.groups))
    assert counts["smoke"] == (14, 10)  # 2 seeds × 7 arms; v2, absorb_train_only, official share a model
    # 3 seeds × (5 arms + 2 more v2 steps + 3 continuous + masked_diffusion K = 5/10/20/50 + AR greedy, beam);
    # the v2-like arms share a model, each family has its own
    assert counts["all_arms"] == (3 * 16, 3 * 5)
    assert counts["absorbing_state"] == (3 * 6, 3 * 5)
    assert counts["gamma_sweep"] == (6 * 3, 6 * 3)
    assert counts["precision"] == (2 * 2 * 3, 2 * 2 * 3)  # 2 arms × {fp32, bf16} × 3 seeds, no shared models
    assert counts["qqp_cpu"][1] == 5 * 3
    # 5 seeds × (5 own-decoder arms + baseline MBR-3 + v2 at 10, 20 + MDLM K = 10, 50 + AR greedy, beam)
    assert counts["qqp_small"] == (5 * 12, 5 * 7)
    assert counts["cross_dataset_small"] == (4 * 3 * 3, 4 * 3 * 3)  # 4 sets × 3 seeds × 3 arms, one decoder each
    assert counts["gamma_small"] == (3 * (2 + 5), 3 * (2 + 5))  # baseline, zero_absorb and v2 at 5 γ; 3 seeds


def _keys(plan: Plan, arms: set[str], seeds: set[int], dataset: str = "qqp", **sweep: float) -> dict[tuple, str]:
    """(arm, seed) → training key of the plan's cells of ``arms`` and ``seeds`` on ``dataset`` at ``sweep``."""
    point = tuple(sorted(sweep.items()))
    return {(c.arm, c.seed): c.train_key for c in plan.cells
            if c.arm in arms and c.seed in seeds and c.dataset == dataset and c.sweep == point}


def test_small_suites_reuse_qqp_small_models(data_root):
    """The suites' descriptions say that linking qqp_small's models reuses them: the keys agree."""
    qqp_small = load_plan(SUITES / "qqp_small.yaml")
    gamma = load_plan(SUITES / "gamma_small.yaml")
    cross = load_plan(SUITES / "cross_dataset_small.yaml")
    seeds = {0, 1, 2}
    fixed = _keys(gamma, {"baseline", "zero_absorb"}, seeds)
    assert len(fixed) == 6 and fixed == _keys(qqp_small, {"baseline", "zero_absorb"}, seeds)
    at_half = _keys(gamma, {"v2"}, seeds, **{"diffusion.gamma": 0.5})
    assert len(at_half) == 3 and at_half == _keys(qqp_small, {"v2"}, seeds)
    assert not set(_keys(gamma, {"v2"}, seeds, **{"diffusion.gamma": 0.25}).values()) & set(at_half.values())
    arms = {"baseline", "v2", "ar_transformer"}
    assert len(_keys(cross, arms, seeds)) == 9 and _keys(cross, arms, seeds) == _keys(qqp_small, arms, seeds)
    assert {c.train.data.seq_len for c in cross.cells if c.dataset != "qqp"} == {64}


def test_dataset_overrides_change_only_their_dataset(tmp_path, data_root):
    plain = load_plan(write_suite(tmp_path, datasets=["qqp", "mrpc"], arms=["v2"], seeds=[0, 1],
                                  baselines=["copy_source"]))
    path = write_suite(tmp_path, datasets=["qqp", "mrpc"], arms=["v2"], seeds=[0, 1], baselines=["copy_source"],
                       dataset_overrides={"mrpc": {"data.seq_len": 40}})
    plan = load_plan(path)
    qqp = [c for c in plan.cells if c.dataset == "qqp"]
    assert [c.cell_id for c in qqp] == [c.cell_id for c in plain.cells if c.dataset == "qqp"]
    assert {c.train.data.seq_len for c in qqp} == {32}  # the smoke preset's
    mrpc = [c for c in plan.cells if c.dataset == "mrpc"]
    assert {c.train.data.seq_len for c in mrpc} == {40} and len(mrpc) == 2
    assert {t.dataset: t.train.data.seq_len for t in plan.trivial} == {"qqp": 32, "mrpc": 40}
    with pytest.raises(ConfigError, match=r"suite\.yaml: .*dataset_overrides names \['asset'\], which are not in "
                                          r"this suite's datasets \['qqp', 'mrpc'\]"):
        load_plan(write_suite(tmp_path, datasets=["qqp", "mrpc"], dataset_overrides={"asset": {"data.seq_len": 40}}))
    with pytest.raises(ConfigError, match=r"dataset_overrides\.mrpc/overrides/sweep \(arm hard_mask\): "
                                          r"data\.seq_len: Input should be greater than or equal to 8"):
        load_plan(write_suite(tmp_path, datasets=["qqp", "mrpc"], dataset_overrides={"mrpc": {"data.seq_len": 4}}))


def test_sweep_arms_train_the_other_arms_once(tmp_path):
    sweep = {"diffusion.gamma": [0.25, 0.5]}
    plan = load_plan(write_suite(tmp_path, arms=["hard_mask", "v2"], seeds=[0, 1], sweep=sweep, sweep_arms=["v2"]))
    points = {(c.arm, c.seed): [] for c in plan.cells}
    for c in plan.cells:
        points[(c.arm, c.seed)].append(dict(c.sweep))
    assert points == {("hard_mask", s): [{}] for s in (0, 1)} | {
        ("v2", s): [{"diffusion.gamma": 0.25}, {"diffusion.gamma": 0.5}] for s in (0, 1)}
    everywhere = load_plan(write_suite(tmp_path, arms=["hard_mask", "v2"], seeds=[0], sweep=sweep))
    assert len(everywhere.groups) == 4  # without sweep_arms, every arm at every point
    with pytest.raises(ConfigError, match=r"sweep_arms names \['baseline'\], which are not in this suite's arms"):
        load_plan(write_suite(tmp_path, sweep=sweep, sweep_arms=["baseline"]))


def test_a_missing_test_split_is_reported_when_the_suite_is_validated(tmp_path, monkeypatch, capsys):
    data = tmp_path / "toy"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"{split}.jsonl").write_text('{"src": "a", "trg": "b"}\n')
    monkeypatch.setenv("DIFFUSEQ_DATA_ROOT", str(tmp_path))
    path = write_suite(tmp_path, datasets=["toy"])
    with pytest.raises(ConfigError, match=r"suite\.yaml: datasets\.0: .*toy has no test\.jsonl, which decode\.split: test "
                                          r"needs; add it or set decode\.split: valid"):
        load_plan(path)
    assert bench_main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "test.jsonl" in err and "\n" not in err
    assert load_plan(write_suite(tmp_path, datasets=["toy"], decode={"split": "valid"})).suite.datasets == ("toy",)
    (data / "train.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"toy has no train\.jsonl, which training needs"):
        load_plan(path)


def test_arms_that_differ_only_in_sampling_share_one_model(tmp_path):
    plan = load_plan(write_suite(tmp_path))
    groups = plan.groups
    assert [g.arms for g in groups] == [["hard_mask"], ["absorb_train_only", "v2"]]
    assert len({c.cell_id for c in plan.cells}) == 3


def test_a_plan_reads_each_arm_once_and_crosses_processes_as_json(tmp_path, monkeypatch):
    import bench.plan as plan_mod

    reads = []
    real = plan_mod.load_arm
    monkeypatch.setattr(plan_mod, "load_arm", lambda arm: reads.append(arm) or real(arm))
    plan = load_plan(write_suite(tmp_path, seeds=[0, 1]))
    assert sorted(reads) == sorted(plan.suite.arms), "each arm file is read once per plan"
    back = Plan.from_json(plan.to_json())
    assert [c.cell_id for c in back.cells] == [c.cell_id for c in plan.cells]
    assert [g.train_key for g in back.groups] == [g.train_key for g in plan.groups]
    assert back.cells == plan.cells, "every field of every cell survives the round trip"
    part = plan.select("hard_mask")
    assert {c.arm for c in part.cells} == {"hard_mask"} and len(part.groups) == 2  # one per seed


def test_a_cell_record_is_checked_against_the_schema(tmp_path):
    keys = dict(suite="s", cell_id="c", train_key="k", arm="v2", arm_label="v2", kind="model", dataset="default",
                seed=0, sampler="ddpm", steps=10, nfe=10, mbr=1, batch_size=4, preset="smoke", gamma=0.5,
                code_version="x", device="cpu", threads=1, bertscore_model="", wall_time_s=1.0, label="ddpm-10", sweep="{}")
    assert list(keys) == CELL_KEYS
    with pytest.raises(TypeError, match=r"CellRecord\.seed must be int"):
        CellRecord(**{**keys, "seed": "0"})
    with pytest.raises(ValueError, match="kind must be one of"):
        CellRecord(**{**keys, "kind": "oracle"})
    store = Store(tmp_path)
    sentences = pd.DataFrame({"sentence": [0], "metric": ["bleu"], "value": [0.5]})
    with pytest.raises(ValueError, match=r"metric\(s\) \['blue'\] are neither registered"):
        store.write_cell(CellRecord(**keys), {"blue": 0.5}, sentences)
    store.write_cell(CellRecord(**keys), {"bleu": 0.5}, sentences)
    assert store.consolidate().set_index("metric").loc["bleu", "seed"] == 0


def _numbers(results: Path) -> pd.DataFrame:
    t = pd.read_parquet(results / "table.parquet")
    t = t[~t.metric.isin(["sentences_per_s", "sample_wall_s", "train_wall_s"])]
    return t.sort_values(["cell_id", "metric"])[["cell_id", "metric", "value"]].reset_index(drop=True)


def test_crash_and_resume_gives_the_uninterrupted_numbers(tmp_path, monkeypatch):
    path = write_suite(tmp_path)
    plan = load_plan(path)
    clean_run = tmp_path / "clean"
    run_suite(plan, clean_run, progress=False)

    crashed = tmp_path / "crashed"
    real = worker.run_cell
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the runner is killed mid-suite
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "run_cell", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_suite(plan, crashed, progress=False)
    assert len(list((crashed / "cells").glob("*.json"))) == 1
    monkeypatch.setattr(worker, "run_cell", real)
    summary = run_suite(plan, crashed, progress=False)
    assert (summary.skipped, summary.done, summary.failed) == (1, 2, {})
    pd.testing.assert_frame_equal(_numbers(clean_run), _numbers(crashed))
    again = run_suite(plan, crashed, progress=False)
    assert (again.skipped, again.done) == (3, 0), "nothing finished is recomputed"


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    path = write_suite(tmp_path)
    plan = load_plan(path)
    real = worker.run_cell

    def fail_v2(suite_, cell, *args):
        if cell.arm == "v2":
            raise RuntimeError("boom")
        return real(suite_, cell, *args)

    monkeypatch.setattr(worker, "run_cell", fail_v2)
    summary = run_suite(plan, tmp_path / "res", progress=False)
    assert summary.done == 2 and len(summary.failed) == 1
    errors = Store(tmp_path / "res").errors()
    assert [e["error"] for e in errors.values()] == ["RuntimeError: boom"]
    states = dict(cell_status(plan, tmp_path / "res"))
    assert sorted(states.values()) == ["done", "done", "failed"]
    with pytest.raises(RuntimeError, match="boom"):
        run_suite(plan, tmp_path / "res", fail_fast=True, progress=False)


def test_a_metric_that_cannot_be_computed_stops_the_run_before_any_training(tmp_path, monkeypatch, capsys):
    """A missing BERTScore dependency is one error line before training, not a failure of every
    cell after its model has trained (as happened on a machine without the bert_score package)."""
    import bench.runner as runner

    def no_bert_score(suite):
        raise ModuleNotFoundError("No module named 'bert_score'")

    monkeypatch.setattr(runner, "scorer", no_bert_score)
    path = write_suite(tmp_path, metrics=["bleu", "bertscore"])
    assert bench_main(["run", str(path), "--results", str(tmp_path / "res"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "metric 'bertscore' cannot be computed here (No module named 'bert_score')" in err
    assert not (tmp_path / "res" / "models").exists() and not (tmp_path / "res" / "cells").exists()
    assert bench_main(["run", str(path), "--results", str(tmp_path / "res2"), "--dry-run"]) == 0, \
        "listing the cells needs no metric"


def test_two_runners_share_one_results_directory(tmp_path):
    path = write_suite(tmp_path)
    results = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench", "run", str(path), "--results", str(results), "--no-progress"]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    table = pd.read_parquet(results / "table.parquet")
    assert table.groupby(["cell_id", "metric"]).size().max() == 1
    assert table.cell_id.nunique() == 3
    assert not list(results.rglob("*.tmp")), "no half-written files left behind"
    logs = [(results / "models" / g.train_key / "log.jsonl").read_text().splitlines() for g in load_plan(path).groups]
    assert all(len({line for line in lg if '"valid"' in line}) == 2 for lg in logs), "each model trained once"


def test_bench_time_needs_trained_models_and_times_the_part_selected(tmp_path, capsys):
    """`bench time` refuses while a model is untrained, naming the fix; with --only it times
    just the trained part, one forward and one train-step row per model configuration."""
    path = write_suite(tmp_path, arms=["hard_mask", "v2"],
                       timing={"reps": 1, "train_steps": 2, "max_chain": 5, "min_unit_s": 0.0, "threads": 1})
    results = tmp_path / "res"
    assert bench_main(["run", str(path), "--results", str(results), "--only", "v2*", "--no-progress"]) == 0
    assert not Store(results).timing(), "no timing pass after a partial run"
    assert bench_main(["time", str(path), "--results", str(results)]) == 2
    assert "not every model of suite tiny is trained yet" in capsys.readouterr().err
    assert bench_main(["time", str(path), "--results", str(results), "--only", "v2*"]) == 0
    timing = pd.read_parquet(results / "timing.parquet")
    assert set(timing.arm) == {"v2"} and sorted(timing.kind) == ["forward", "sample_batch", "train_step"]
    # A 1-thread pass on a CPU divides CPU seconds, and keeps the wall seconds of the same units.
    assert set(timing.clock) == {"cpu"} and (timing.threads == 1).all()
    assert (timing.min_s > 0).all() and (timing.wall_min_s > 0).all()


def test_the_timing_pass_times_every_sampling_configuration_of_the_all_arms_suite():
    """One timed decoder per distinct (arm, label, sampler spec) of each model configuration: the
    three `continuous` v2 entries (5, 10, 20 steps) share a label and are still timed apiece."""
    plan = load_plan("all_arms")
    timed = [c for g in config_groups(list(plan.groups)) for c in distinct_decoders(g)]
    seed0 = {(c.arm, c.label, c.sampler.key()) for c in plan.cells if c.seed == plan.suite.seeds[0]}
    assert len(timed) == len(seed0) == 16
    assert {(c.arm, c.label, c.sampler.key()) for c in timed} == seed0
    assert sorted(c.sampler.steps for c in timed if c.label == "continuous") == [5, 10, 20]


def test_timed_units_repeat_short_calls_until_they_last_min_unit_s():
    """A 10 ms call is repeated 50 times in a 0.5 s unit; a long call runs once; the unit's figure
    is the mean per call."""
    assert _calls_per_unit(0.01, 0.5) == 50
    assert _calls_per_unit(2.0, 0.5) == 1 and _calls_per_unit(0.3, 0.0) == 1
    calls = []
    per_call = _seconds(lambda: (calls.append(1), time.sleep(0.01)), calls=5)
    assert len(calls) == 5 and 0.01 <= per_call.wall < 0.05


def test_the_cpu_clock_counts_work_and_not_waiting():
    """A call that waits (as a process does while a busy machine runs others) costs wall time but
    no CPU time; a call that computes on one thread costs CPU time, at most its wall time."""
    waiting = _seconds(lambda: time.sleep(0.2))
    assert waiting.wall >= 0.2 and waiting.cpu < 0.05
    x, threads = torch.randn(256, 256), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        working = _seconds(lambda: [x @ x for _ in range(200)], calls=2)  # ~7 GFLOP per call
    finally:
        torch.set_num_threads(threads)
    assert 0.02 < working.cpu <= 1.1 * working.wall


def test_smoke_suite_end_to_end_with_report(tmp_path):
    results, report = tmp_path / "results", tmp_path / "report"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-m", "bench", "run", "smoke", "--results", str(results), "--no-progress"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    table = pd.read_parquet(results / "table.parquet")
    models = {"baseline", "hard_mask", "zero_absorb", "absorb_train_only", "v2", "v2_noreg", "official_v2_sampling"}
    assert set(table.arm) == models | {"copy_source", "nearest_train_target"}
    assert set(table.seed) == {0, 1}
    assert {"bleu", "bertscore", "self_bleu", "sentences_per_s", "curve_bleu_final", "valid_bleu_full"} <= set(table.metric)
    assert (results / "curves.parquet").is_file() and (results / "per_sentence.parquet").is_file()
    timing = pd.read_parquet(results / "timing.parquet")
    assert set(timing.kind) == {"train_step", "forward", "sample_batch"}
    assert (timing.min_s > 0).all() and (timing.min_s <= timing.median_s).all()
    # A 1-thread pass on the CPU divides CPU seconds; any other, wall seconds (then the two columns agree).
    assert ((timing.clock == "cpu") == (timing.threads == 1)).all()
    assert (timing.min_s[timing.clock == "wall"] == timing.wall_min_s[timing.clock == "wall"]).all()
    rep = subprocess.run([sys.executable, "-m", "bench", "report", "--results", str(results), "--out", str(report)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stderr[-3000:]
    text = (report / "report.md").read_text()
    assert "baseline" in text and "v2" in text and list(report.glob("*.png"))


def test_curves_use_each_arms_own_decoder_and_cells_check_it(tmp_path):
    """DiffuSeq's curve is decoded with DDPM + clamp (respaced), v2's with DPM-Solver++; an extra
    decoder is recorded but not marked own; each cell compares the curve's last point with its full
    decoder on the same validation sources (identical when the decoders are the same)."""
    extra = {"sampler": "dpm_solver++", "steps": 5}
    path = write_suite(tmp_path, arms=["baseline", "v2"], baselines=[],
                       samplers=[{"arms": ["v2"]}, {"arms": ["baseline"], "set": {"steps": 30, "mbr": 1}}],
                       curves={"every": 10, "examples": 8, "steps": 12, "extra": [extra]},
                       timing={"enabled": False})
    run_suite(load_plan(path), tmp_path / "res", progress=False)
    curves = pd.read_parquet(tmp_path / "res" / "curves.parquet")
    bleu = curves[curves.metric == "bleu"]
    own = bleu[bleu.own_decoder].groupby("arm")["decoder"].unique().to_dict()
    assert list(own["baseline"]) == ["ddpm-12 clamp gaussian start"]
    assert list(own["v2"]) == ["dpm_solver++-10"]
    assert set(bleu[~bleu.own_decoder].decoder) == {"dpm_solver++-5"}
    assert (bleu.examples == bleu.step * TINY["overrides"]["optim.batch_size"]).all()
    assert {"m_norm", "m_norm_ema", "emb_norm", "val_mse", "val_nll", "val_token_nll"} <= set(curves.metric)
    assert (curves[(curves.arm == "baseline") & (curves.metric == "m_norm")].value == 0).all()
    table = pd.read_parquet(tmp_path / "res" / "table.parquet").pivot(index="arm", columns="metric", values="value")
    assert table.loc["v2", "valid_bleu_full"] == table.loc["v2", "curve_bleu_final"]  # same decoder, same seed
    last = bleu[bleu.own_decoder & (bleu.arm == "v2") & (bleu.step == bleu.step.max())].value.item()
    assert table.loc["v2", "curve_bleu_final"] == last
    assert 0 <= table.loc["baseline", "valid_bleu_full"] <= 1


def test_trivial_rows_are_scored_like_the_models(tmp_path, monkeypatch):
    """copy_source on three pairs, BLEU by hand: with every n-gram order matched (no smoothing),
    BLEU = BP · exp(¼ Σ log p_n); nearest_train_target returns the target of the same source."""
    data = tmp_path / "toy"
    data.mkdir()
    pairs = {
        "train": [("how do i learn to cook rice", "what is the best way to cook rice"),
                  ("why is the sky blue", "what makes the sky blue")] * 20,
        "valid": [("why is the sky blue", "what makes the sky blue")],
        "test": [("how can i learn to swim fast", "how can i learn to swim"),  # hyp longer than ref: BP = 1
                 ("what is the capital of france", "what is the capital city of france"),
                 ("why is the sky blue", "why is the sky blue today")],
    }
    for split, rows in pairs.items():
        (data / f"{split}.jsonl").write_text("".join(f'{{"src": "{s}", "trg": "{t}"}}\n' for s, t in rows))
    path = write_suite(tmp_path, datasets=[str(data)], arms=["v2"], metrics=["bleu"],
                       baselines=["copy_source", "nearest_train_target"],
                       overrides={**TINY["overrides"], "data.tokenizer": "bert"})
    plan = load_plan(path)
    store = Store(tmp_path / "res")
    from bench.runner import run_trivial_cells

    assert run_trivial_cells(plan.suite, list(plan.trivial), store, fail_fast=True) == (2, {})
    table = store.consolidate()
    bleu = table[table.metric == "bleu"].set_index("arm")["value"]

    def by_hand(matches: list[int], totals: list[int], hyp_len: int, ref_len: int) -> float:
        bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
        return bp * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4)

    expected = [
        by_hand([6, 5, 4, 3], [7, 6, 5, 4], 7, 6),  # 'fast' unmatched
        by_hand([6, 4, 2, 1], [6, 5, 4, 3], 6, 7),  # "city" missing: BP = e^(1-7/6)
        by_hand([5, 4, 3, 2], [5, 4, 3, 2], 5, 6),  # a prefix of the reference: BP = e^(1-6/5)
    ]
    assert bleu["copy_source"] == pytest.approx(sum(expected) / 3, rel=1e-9)
    recover = [json.loads(line)["recover"] for line in
               next((tmp_path / "res" / "samples").glob("nearest_train_target-*/samples.jsonl")).open()]
    assert clean(recover[2]) == ["what", "makes", "the", "sky", "blue"]


def test_user_suite_folders_are_read_before_the_built_in_suites(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "smoke.yaml").write_text(yaml.safe_dump({**TINY, "name": "my-smoke"}))
    assert load_plan("smoke").suite.name == "smoke"
    monkeypatch.setenv("DIFFUSEQ_SUITES_DIR", str(tmp_path / "mine"))
    assert load_plan("smoke").suite.name == "my-smoke" and load_plan("all_arms").suite.name == "all_arms"
    assert bench_main(["validate", "smoke"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'mine' / 'smoke.yaml'}: ok — 3 cells")
    with pytest.raises(ConfigError, match=r"suite 'nope' not found: .*suites: \[.*'all_arms'.*'smoke'"):
        load_plan("nope")


def chosen(plan: Plan) -> tuple[int, int]:
    return plan.suite.executor.workers, plan.suite.threads


def test_workers_and_threads_are_chosen_from_cores_and_model_size(monkeypatch, data_root):
    """Small models: one 1-thread worker per core (at most one per model); a large model or a GPU:
    one worker with every core; a suite's own numbers and --workers win; never more threads than
    cores."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    all_arms = load_plan("all_arms")  # 15 smoke-size models
    assert chosen(resolve(all_arms, cores=2)) == (2, 1)
    assert chosen(resolve(all_arms, cores=32)) == (15, 2)
    assert chosen(resolve(all_arms, workers=1, cores=2)) == (1, 2)  # `--workers 1`
    assert chosen(resolve(all_arms, cores=2).select("v2-default-s0-*")) == (2, 1)  # `bench time --only`: the suite's choice
    one = Plan(all_arms.suite, all_arms.source, all_arms.groups[:1], ())
    assert chosen(resolve(one, cores=2)) == (1, 2)
    paper = load_plan("paper_gpu")  # 12 layers, hidden 768: about 85M parameters without the vocabulary
    assert model_size(paper.groups) > LARGE_MODEL_PARAMS > model_size(all_arms.groups)
    assert chosen(resolve(paper)) == (1, 4)  # its SLURM task: 16 cpus_per_task shared by 4 torchrun ranks
    local = replace(paper, suite=paper.suite.model_copy(update={"executor": ExecutorSpec()}))
    assert chosen(resolve(local, cores=16)) == (1, 16)
    fixed = replace(all_arms, suite=all_arms.suite.model_copy(update={"threads": 1}))
    assert chosen(resolve(fixed, cores=8)) == (8, 1)
    calibration = load_plan("qqp_calibration")  # executor: {workers: 2}, threads: 1
    assert chosen(resolve(calibration, cores=16)) == (2, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert chosen(resolve(all_arms, cores=2)) == (1, 2)


def test_results_do_not_depend_on_workers_and_threads(tmp_path):
    """The same suite run as one 2-thread worker and as two 1-thread workers gives the same
    outputs and numbers (beyond wall times) at this size (its curves may differ in the last bits:
    docs/design.md §3); the table and MANIFEST.json record the choice."""
    tables, outputs = {}, {}
    for workers, threads in ((1, 2), (2, 1)):
        (tmp_path / f"w{workers}").mkdir()
        path = write_suite(tmp_path / f"w{workers}", arms=["hard_mask", "v2"], threads=threads)
        results = tmp_path / f"w{workers}" / "res"
        assert bench_main(["run", str(path), "--results", str(results), "--workers", str(workers), "--no-progress"]) == 0
        manifest = json.loads((results / "MANIFEST.json").read_text())
        assert manifest["executor"] | {"kind": "local"} == {"kind": "local", "workers": workers, "threads": threads}
        tables[workers] = pd.read_parquet(results / "table.parquet")
        assert set(tables[workers].threads) == {threads}
        outputs[workers] = {f.parent.name: [json.loads(line)["recover"] for line in f.read_text().splitlines()]
                            for f in sorted((results / "samples").glob("*/samples.seed0.jsonl"))}
    assert len(outputs[1]) == 2 and outputs[1] == outputs[2]  # every generated sentence
    keep = ~tables[1].metric.isin(["sentences_per_s", "sample_wall_s", "train_wall_s"])
    a, b = (t[keep].drop(columns=["threads", "wall_time_s"]).sort_values(["cell_id", "metric"]).reset_index(drop=True)
            for t in (tables[1], tables[2]))
    pd.testing.assert_frame_equal(a, b)


def test_status_of_a_fresh_suite_writes_nothing(tmp_path, capsys):
    """`bench status` only reads: before any run every cell is pending and the results directory
    is left as it was (no models/ folder, no lock files)."""
    path, results = write_suite(tmp_path), tmp_path / "res"
    assert bench_main(["status", str(path), "--results", str(results)]) == 0
    assert "0 done, 0 running, 0 submitted, 0 failed, 3 pending" in capsys.readouterr().out
    assert not (results / "models").exists()


def test_killing_the_runner_stops_its_workers(tmp_path):
    """SIGKILL of `bench run --workers 2` must not leave orphaned workers training on (they get
    SIGTERM from the kernel); SIGTERM and Ctrl-C (SIGINT to the whole process group, as a
    terminal sends it) stop the runner and its workers, ending on the resume hint alone: no
    resource-tracker warning about leaked semaphores."""
    path = write_suite(tmp_path, arms=["hard_mask", "v2"], overrides={**TINY["overrides"], "optim.steps": 100000})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        results = tmp_path / f"res-{sig.name}"
        cmd = [sys.executable, "-m", "bench", "run", str(path), "--results", str(results), "--workers", "2", "--no-progress"]
        runner = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        workers: list[int] = []
        for _ in range(1800):  # until both workers are training (their logs exist), at most 180 s
            logs = list(results.glob("models/*/log.jsonl"))
            workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True,
                                                      text=True).stdout.split()]
            if len(logs) == 2 and len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(logs) == 2, "the workers did not start training"
        if sig == signal.SIGINT:
            os.killpg(runner.pid, sig)
        else:
            runner.send_signal(sig)
        runner.wait(timeout=60)
        for _ in range(300):  # at most 30 s for the kernel and the pool to stop them
            alive = [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text()]
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, f"workers {alive} outlived the runner ({sig.name})"
        if sig != signal.SIGKILL:
            err = runner.stderr.read()
            assert runner.returncode == 130 and "run the same command again to resume" in err
            assert "leaked semaphore" not in err, err


def test_the_progress_line_names_each_model_in_flight_and_its_step(tmp_path):
    """A locked model with a training log shows its step; one whose log reached the last step is
    decoding; one locked without a log is starting; an unlocked one is not shown."""
    from bench.progress import status_line

    plan = load_plan("smoke")
    store = Store(tmp_path)
    base, v2 = (next(g for g in plan.groups if arm in g.arms and g.cells[0].seed == 0) for arm in ("baseline", "v2"))
    steps = base.train.optim.steps
    assert status_line(store, plan.groups) == ""
    with store.model_lock(base.train_key), store.model_lock(v2.train_key):
        assert status_line(store, [base, v2]) == "baseline s0 starting · absorb_train_only/official_v2_sampling/v2 s0 starting"
        log = store.model_dir(base.train_key) / "log.jsonl"
        log.parent.mkdir(parents=True)
        log.write_text(json.dumps({"step": 40, "split": "train"}) + "\n")
        assert status_line(store, [base]) == f"baseline s0 step 40/{steps}"
        with log.open("a") as f:
            f.write(json.dumps({"step": steps, "split": "valid"}) + "\n")
        assert status_line(store, [base]) == "baseline s0 decoding"
    assert status_line(store, [base, v2]) == ""
