"""Across datasets: per-dataset effects, their heterogeneity and the report's section, on known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.report import ReportOptions, analyse, build_report, load_results
from bench.report.crossdata import random_effects, welch_test
from bench.report.markdown import Report, render
from bench.report.sections.cross_dataset import AcrossDatasets
from bench.report.synthetic import ConfigSpec, write_results

pytestmark = pytest.mark.filterwarnings("error")

BASE = ConfigSpec("baseline", "ddpm", 2000, sentences_per_s=0.5, tau=3000)
DATASETS = ("qqp", "mrpc", "dialogue", "iwslt")


def _report(results: Path) -> Report:
    return Report.compute(analyse(load_results(results), ReportOptions(n_boot=200)))


def _analysis(tmp_path: Path, v2: ConfigSpec, **kwargs: object) -> Report:
    return _report(write_results(tmp_path, [BASE, v2], datasets=DATASETS, n_sentences=40, **kwargs))


def _v2_bleu(a: Report) -> pd.Series:
    pooled = a[AcrossDatasets].crossdata.pooled
    return pooled[(pooled["arm"] == "v2") & (pooled["metric"] == "bleu")].iloc[0]


def test_random_effects_by_hand() -> None:
    # y = (0, 0.4, 0.2), se = (0.1, 0.1, 0.2): w = (100, 100, 25), fixed mean 45/225 = 0.2,
    # Q = 100·0.04 + 100·0.04 + 0 = 8 on 2 df, C = 225 − 20625/225, τ² = (8 − 2)/C = 0.045, I² = 6/8.
    r = random_effects([0.0, 0.4, 0.2], [0.1, 0.1, 0.2], alpha=0.05)
    assert r["q"] == pytest.approx(8.0) and r["df"] == 2
    assert r["q_p"] == pytest.approx(np.exp(-4.0))  # the χ² survival function on 2 df is exp(−Q/2)
    assert r["tau2"] == pytest.approx(6 / (225 - 20625 / 225)) == pytest.approx(0.045)
    assert r["i2"] == pytest.approx(0.75)
    # Weights w* = 1/(se² + τ²); Hartung–Knapp's q = Σ w*(y − μ)²/(k − 1) = (2 · 0.04/0.055)/2 < 1,
    # so the modified rule keeps (Σ w*)^-½, with a t quantile on k − 1 = 2 df.
    se = (2 / 0.055 + 1 / 0.085) ** -0.5
    assert r["pooled"] == pytest.approx(0.2) and r["pooled_se"] == pytest.approx(se)
    assert r["pooled_high"] - r["pooled"] == pytest.approx(stats.t.ppf(0.975, 2) * se)
    # se = (0.1, 0.1, 0.05): w = (100, 100, 400), Q = 8, C = 600 − 180000/600 = 300, τ² = 0.02,
    # w* = (1/0.03, 1/0.03, 1/0.0225), μ = 0.2, q = (2 · 0.04/0.03)/2 = 4/3 > 1: se² = q / Σ w* = 0.012.
    wide = random_effects([0.0, 0.4, 0.2], [0.1, 0.1, 0.05], alpha=0.05)
    assert wide["tau2"] == pytest.approx(0.02) and wide["pooled"] == pytest.approx(0.2)
    assert wide["pooled_se"] == pytest.approx(0.012**0.5)
    assert wide["pooled_low"] == pytest.approx(0.2 - stats.t.ppf(0.975, 2) * 0.012**0.5)
    # Q below its degrees of freedom: τ² and I² are 0 and the pooled mean is the fixed-effect one.
    flat = random_effects([0.1, 0.3, 0.2], [0.1, 0.1, 0.2], alpha=0.05)
    assert flat["q"] == pytest.approx(2.0) and flat["tau2"] == 0.0 and flat["i2"] == 0.0
    assert flat["pooled"] == pytest.approx(0.2) and flat["pooled_se"] == pytest.approx(1 / 15)


def test_planted_same_and_opposite_effects() -> None:
    same = random_effects(0.02 + np.array([0.001, -0.001, 0.0005, -0.0005]), [0.003] * 4, alpha=0.05)
    assert same["q"] == pytest.approx((1 + 1 + 0.25 + 0.25) / 9) and same["q_p"] > 0.9
    assert same["i2"] == 0.0 and same["tau2"] == 0.0 and same["pooled"] == pytest.approx(0.02)
    opposite = random_effects([0.03, 0.03, -0.03, -0.03], [0.003] * 4, alpha=0.05)
    assert opposite["q"] == pytest.approx(400.0) and opposite["q_p"] < 1e-12
    assert opposite["i2"] == pytest.approx(1 - 3 / 400) and opposite["pooled"] == pytest.approx(0.0, abs=1e-12)
    assert opposite["tau2"] == pytest.approx((400 - 3) / (4 / 0.003**2 - 4 / 0.003**4 / (4 / 0.003**2)))


def _null_draws(rng: np.random.Generator, sds: tuple[float, ...]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """3 seed-paired differences per dataset, true effect 0 with spread ``sds``: the samples, their
    means and standard errors."""
    samples = [rng.normal(0.0, sd, 3) for sd in sds]
    return samples, np.array([s.mean() for s in samples]), np.array([s.std(ddof=1) / np.sqrt(3) for s in samples])


def test_q_is_anticonservative_with_three_seeds_and_welch_is_not() -> None:
    """Why the report answers from Welch's test: 4 datasets × 3 seeds, one true effect."""
    rng = np.random.default_rng(0)
    q_p, welch_p = [], []
    for _ in range(400):
        samples, y, se = _null_draws(rng, (1.0, 1.0, 2.0, 0.5))
        q_p.append(random_effects(y, se, alpha=0.05)["q_p"])
        welch_p.append(welch_test(samples)["welch_p"])
    assert np.mean(np.array(q_p) < 0.05) > 0.15
    assert 0.02 <= np.mean(np.array(welch_p) < 0.05) <= 0.10


def test_the_pooled_interval_keeps_its_coverage_with_three_seeds() -> None:
    """4 datasets × 3 seeds, one true effect (0) and unequal spreads: the normal interval around
    the random-effects mean covers it far less often than 95%, the modified Hartung–Knapp one does."""
    rng = np.random.default_rng(0)
    covered, normal = [], []
    for _ in range(1000):
        _, y, se = _null_draws(rng, (0.01, 0.02, 0.03, 0.05))
        r = random_effects(y, se, alpha=0.05)
        covered.append(r["pooled_low"] <= 0.0 <= r["pooled_high"])
        w = 1 / (se**2 + r["tau2"])
        normal.append(abs(r["pooled"]) <= stats.norm.ppf(0.975) / np.sqrt(w.sum()))
    assert np.mean(normal) < 0.90
    assert np.mean(covered) >= 0.93


def test_the_same_effect_on_every_dataset(tmp_path: Path) -> None:
    # Under a true null any p-value can come out small; this seeded table is one where it does not.
    a = _analysis(tmp_path, ConfigSpec("v2", "dpm_solver++", 10, gamma=0.5, bleu_shift=0.02), seeds=range(10))
    effects = a[AcrossDatasets].crossdata.effects
    bleu = effects[(effects["arm"] == "v2") & (effects["metric"] == "bleu")]
    assert sorted(bleu["dataset"]) == sorted(DATASETS) and (bleu["n"] == 10).all()
    r = _v2_bleu(a)
    assert r["k"] == 4 and r["df"] == 3
    assert r["q_p"] > 0.2 and r["welch_p"] > 0.2 and r["i2"] < 0.1
    assert r["pooled"] == pytest.approx(0.02, abs=0.003)
    section = render(a, [], [], Path("out")).split("## Across datasets")[1]
    assert "**Is v2's effect over DiffuSeq the same on every dataset?** **Not shown to differ**" in section
    assert "not one effect measured on the datasets pooled" in section


def test_opposite_effects_on_two_pairs_of_datasets(tmp_path: Path) -> None:
    v2 = ConfigSpec("v2", "dpm_solver++", 10, gamma=0.5, bleu_shift=0.03,
                    dataset_shift=(("dialogue", -0.06), ("iwslt", -0.06)))
    a = _analysis(tmp_path, v2, seeds=range(3))
    r = _v2_bleu(a)
    assert r["q_p"] < 1e-4 and r["welch_p"] < 0.01 and r["i2"] > 0.9 and r["tau2"] > 0.0005
    assert r["pooled_low"] < 0 < r["pooled_high"]  # the average of +0.03 and −0.03 effects
    effects = a[AcrossDatasets].crossdata.effects.set_index(["arm", "metric", "dataset"])
    assert effects.loc[("v2", "bleu", "qqp"), "diff"] == pytest.approx(0.03, abs=0.01)
    assert effects.loc[("v2", "bleu", "iwslt"), "diff"] == pytest.approx(-0.03, abs=0.01)
    section = render(a, [], [], Path("out")).split("## Across datasets")[1].split("\n## ")[0]
    assert "**No** (BLEU, `v2` − `baseline` paired on seeds, 4 datasets)" in section
    assert "averages effects that differ" in section
    for trivial in ("`copy_source`", "`nearest_train_target`"):
        assert trivial in section.split("| dataset | metric |")[1].splitlines()[0]  # a column of the table


def test_a_dataset_without_a_spread_is_left_out(tmp_path: Path) -> None:
    v2 = ConfigSpec("v2", "dpm_solver++", 10, gamma=0.5, bleu_shift=0.02)
    results = write_results(tmp_path, [BASE, v2], datasets=("qqp", "mrpc"), seeds=(0, 1), n_sentences=20)
    table = pd.read_parquet(results / "table.parquet")
    only_mrpc_seed0 = ~((table["dataset"] == "mrpc") & (table["seed"] == 1))
    table[only_mrpc_seed0].to_parquet(results / "table.parquet")
    a = _report(results)
    r = _v2_bleu(a)
    assert r["k"] == 1 and r["excluded"] == "mrpc" and np.isnan(r["welch_p"]) and np.isnan(r["q"])
    assert "Not answerable here" in render(a, [], [], Path("out"))


def test_the_section_and_its_tables_only_with_several_datasets(tmp_path: Path) -> None:
    v2 = ConfigSpec("v2", "dpm_solver++", 10, gamma=0.5, bleu_shift=0.02)
    one = write_results(tmp_path / "one", [BASE, v2], seeds=(0, 1), n_sentences=20)
    a = _report(one)
    x = a[AcrossDatasets].crossdata
    assert x.configs.empty and x.effects.empty and x.pooled.empty
    assert "## Across datasets" not in render(a, [], [], Path("out"))
    two = write_results(tmp_path / "two", [BASE, v2], datasets=("qqp", "mrpc"), seeds=(0, 1), n_sentences=20)
    report = build_report(two, tmp_path / "out", n_boot=200).read_text()
    assert report.index("## Trivial rows") < report.index("## Across datasets") < report.index("## Training")
    assert "[dataset_effects.csv](dataset_effects.csv)" in report and "[heterogeneity.csv](heterogeneity.csv)" in report
    compared = pd.read_csv(tmp_path / "out" / "heterogeneity.csv")
    assert set(compared["metric"]) == {"bleu", "rouge_l", "bertscore", "corpus_bleu"}  # quality, with a direction
