"""Speed from the controlled timing pass (``timing.parquet``), never from cells' own wall times.

The timing pass runs every configuration on the same batch, interleaved, a few repetitions after
warm-up, on one device. Figures from different devices are never divided by each other: per
scope, ratios use only the device that timed the most configurations there (ties by name); rows
timed elsewhere are listed but not divided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import schema
from bench.report.configs import ARM_SEPARATOR, CONFIG_KEYS, SCOPE_KEYS

NO_TIMING = ("no timing pass (timing.parquet absent or empty): the report makes no speed claim and never "
             "falls back to the cells' raw wall times.")
# The model a train_step or forward row times: the arms sharing it (exploded to one per row here).
_MODEL_MATCH = [*SCOPE_KEYS, "arm", "gamma", "sweep"]


def primary_devices(timing: pd.DataFrame) -> pd.DataFrame:
    """Per scope, the one device whose rows are divided by each other: the device with the most
    timing rows there, ties broken by name."""
    counts = timing.groupby([*SCOPE_KEYS, "device"]).size().rename("rows").reset_index()
    ranked = counts.sort_values([*SCOPE_KEYS, "rows", "device"], ascending=[True] * len(SCOPE_KEYS) + [False, True])
    return ranked.drop_duplicates(SCOPE_KEYS)[[*SCOPE_KEYS, "device"]].reset_index(drop=True)


def on_primary_device(timing: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of ``timing`` timed on their scope's primary device."""
    marked = timing[[*SCOPE_KEYS, "device"]].merge(primary_devices(timing).assign(_primary=True),
                                                   on=[*SCOPE_KEYS, "device"], how="left")
    return pd.Series(marked["_primary"].eq(True).to_numpy(), index=timing.index)


def device_note(timing: pd.DataFrame | None) -> str | None:
    """A sentence when the timing pass holds more than one device (else None)."""
    if timing is None or timing["device"].nunique() < 2:
        return None
    devices = ", ".join(f"`{d}`" for d in sorted(timing["device"].unique()))
    used = "; ".join(
        f"{' / '.join(str(r[k]) for k in SCOPE_KEYS)}: `{r['device']}`"
        for r in primary_devices(timing).to_dict("records")
    )
    ignored = int((~on_primary_device(timing)).sum())
    return (f"The timing pass holds figures from {timing['device'].nunique()} devices ({devices}). Figures from "
            f"different devices are never divided by each other: ratios use one device per scope ({used}); "
            f"{ignored} timing row(s) from other devices are listed but enter no ratio.")


CLOCKS = {
    "cpu": "the timing process's CPU seconds (a 1-thread pass on a CPU: the work itself, not the time it waited "
           "while other processes ran, so the load of a busy machine does not enter the ratios; the wall-clock "
           "figures of the same units are in timing.parquet, `wall_min_s`)",
    "wall": "wall-clock seconds, the device synchronised",
}


def clock_note(timing: pd.DataFrame | None) -> str:
    """What the timing pass's seconds count, in words ("" without a pass)."""
    if timing is None:
        return ""
    by_clock = timing.groupby("clock")["device"].unique()
    if len(by_clock) == 1:
        return f"Timed seconds are {CLOCKS[by_clock.index[0]]}."
    return "Timed seconds are " + "; ".join(f"{CLOCKS[c]} on `{', '.join(sorted(d))}`" for c, d in by_clock.items()) + "."


def _explode_arms(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per arm of rows whose ``arm`` names several arms joined by " / "."""
    return frame.assign(arm=frame["arm"].astype(str).str.split(ARM_SEPARATOR)).explode("arm")


def train_costs(timing: pd.DataFrame | None) -> pd.DataFrame:
    """Seconds per optimizer step per model configuration (primary device), one row per arm of the
    model: min_s as ``train_step_s``, median_s, the training batch, the device and repetitions."""
    columns = [*_MODEL_MATCH, "device", "train_step_s", "train_step_median_s", "train_batch", "train_reps"]
    if timing is None:
        return pd.DataFrame(columns=columns)
    steps = timing[(timing["kind"] == "train_step") & on_primary_device(timing)]
    steps = _explode_arms(steps).rename(columns={"min_s": "train_step_s", "median_s": "train_step_median_s",
                                                 "batch_size": "train_batch", "reps": "train_reps"})
    return steps[columns].drop_duplicates(_MODEL_MATCH).reset_index(drop=True)


SPEED_COLUMNS = [
    *CONFIG_KEYS, "device", "reps", "extrapolated", "timed_batch", "min_s", "median_s", "forward_s", "floor_s",
    "candidates_per_s", "outputs_per_s", "outputs_per_s_median", "floor_outputs_per_s",
]


def config_speeds(timing: pd.DataFrame | None) -> pd.DataFrame:
    """Per sampling configuration (``sample_batch`` rows on the primary device): seconds to decode
    one batch with one candidate (min and median), the floor nfe × one denoiser forward, and
    throughputs: candidates/s = batch / min_s; outputs/s = batch / mbr_min_s, the batch with all its
    MBR candidates timed as the cells decode them (stacked); the floor's outputs/s assumes MBR-n
    costs n chains."""
    if timing is None:
        return pd.DataFrame(columns=SPEED_COLUMNS)
    primary = timing[on_primary_device(timing)]
    batches = primary[primary["kind"] == "sample_batch"].rename(columns={"batch_size": "timed_batch"})
    forward = _explode_arms(primary[primary["kind"] == "forward"]).rename(
        columns={"min_s": "forward_s", "batch_size": "timed_batch"})[[*_MODEL_MATCH, "timed_batch", "forward_s"]]
    forward = forward.drop_duplicates([*_MODEL_MATCH, "timed_batch"])
    # The cell's batch_size is the configuration's; the timed batch may differ (it is what is divided).
    speeds = batches.merge(forward, on=[*_MODEL_MATCH, "timed_batch"], how="left")
    config = [k for k in CONFIG_KEYS if k != "batch_size"]
    speeds = speeds.assign(batch_size=speeds["timed_batch"])
    speeds["floor_s"] = speeds["nfe"] * speeds["forward_s"]
    speeds["candidates_per_s"] = speeds["timed_batch"] / speeds["min_s"]
    speeds["outputs_per_s"] = speeds["timed_batch"] / speeds["mbr_min_s"]
    speeds["outputs_per_s_median"] = speeds["timed_batch"] / speeds["mbr_median_s"]
    speeds["floor_outputs_per_s"] = speeds["timed_batch"] / (speeds["mbr"] * speeds["floor_s"])
    return speeds.drop_duplicates(config)[SPEED_COLUMNS].reset_index(drop=True)


def match_speed(speeds: pd.DataFrame, config: dict) -> pd.Series | None:
    """The timing of one configuration (all CONFIG_KEYS but the batch size), else None."""
    if speeds.empty:
        return None
    keys = {k: config[k] for k in CONFIG_KEYS if k != "batch_size"}
    rows = speeds.merge(pd.DataFrame([keys]), on=list(keys))
    return rows.iloc[0] if len(rows) else None


def speed_ratios(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """A's speedup over B from their timings (same device, else NaN): per candidate (without MBR),
    per output counting each one's MBR (from min_s and from median_s), and of the floors."""
    nan = dict.fromkeys(["speedup", "speedup_mbr", "speedup_mbr_median", "speedup_floor_mbr"], np.nan)
    if a is None or b is None or a["device"] != b["device"]:
        return nan
    return {
        "speedup": a["candidates_per_s"] / b["candidates_per_s"],
        "speedup_mbr": a["outputs_per_s"] / b["outputs_per_s"],
        "speedup_mbr_median": a["outputs_per_s_median"] / b["outputs_per_s_median"],
        "speedup_floor_mbr": a["floor_outputs_per_s"] / b["floor_outputs_per_s"],
    }


SAMPLING_COLUMNS = [*SPEED_COLUMNS, "speedup", "speedup_mbr", "speedup_mbr_median", "speedup_floor_mbr"]


def sampling_speedups(speeds: pd.DataFrame, summary: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """Per timed configuration: its timing, its speedups over the scope's reference (the baseline's
    DDPM with the most steps; same device only) and its quality (mean and CI over seeds)."""
    if speeds.empty:
        return pd.DataFrame(columns=SAMPLING_COLUMNS)
    refs = {tuple(r[k] for k in SCOPE_KEYS): match_speed(speeds, r) for r in references.to_dict("records")}
    ratios = [
        speed_ratios(row, refs.get(tuple(row[k] for k in SCOPE_KEYS)))
        for _, row in speeds.iterrows()
    ]
    out = pd.concat([speeds, pd.DataFrame(ratios, index=speeds.index)], axis=1)
    if not len(summary):
        return out
    quality = (
        summary[summary["metric"].isin(["bleu", "bertscore"])]
        .drop(columns="batch_size")
        .set_index([*[k for k in CONFIG_KEYS if k != "batch_size"], "metric"])[["mean", "ci_low", "ci_high"]]
        .unstack("metric")
    )
    quality.columns = [f"{metric}_{stat}" for stat, metric in quality.columns]
    return out.merge(quality.reset_index(), on=[k for k in CONFIG_KEYS if k != "batch_size"], how="left")


def elsewhere(timing: pd.DataFrame | None) -> pd.DataFrame:
    """The timing rows of devices other than their scope's primary one (listed, never divided)."""
    if timing is None:
        return pd.DataFrame(columns=schema.TIMING_COLUMNS)
    return timing[~on_primary_device(timing)].reset_index(drop=True)
