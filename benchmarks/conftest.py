"""Shared setup of the benchmarks (``nox -s bench``; not collected by plain ``pytest``, whose
testpaths are ``tests``): 2 threads, the model sizes, and a closing table of ratios.

Each benchmark is one comparison (:func:`compare`): implementations tagged ``old`` (the
reference in :mod:`old_paths`), ``new`` (the library) and ``floor`` (what the operation cannot
beat, e.g. the denoiser forwards it needs), timed interleaved, one call of each per round in a
rotating order, so that the load of a shared machine hits all of them alike. pytest-benchmark
times the rounds; the closing table gives each implementation's median seconds per unit and the
ratios old/new, new/floor, old/floor as medians of the per-round ratios (paired), all from the
same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch

from diffuseq.config import PRESETS, ModelSpec

THREADS = 2
# PEER-CPU: the model of the old bench scripts (the `cpu` preset's shapes).
PEER_CPU = ModelSpec(layers=4, hidden=256, heads=4, ffn=1024, embed_dim=128, dropout=0.0)
# The all_arms suite's model: the smoke preset.
SMOKE = ModelSpec(**PRESETS["smoke"]["model"], dropout=0.0)
BERT_VOCAB, WORDPIECE_8K = 30522, 8000

_RESULTS: dict[str, dict] = {}


def pytest_configure(config):
    torch.set_num_threads(THREADS)


@pytest.fixture
def compare(benchmark):
    """``compare(group, {"old": f, "new": g, "floor": h}, per=1, unit="call", rounds=5)``."""

    def run(group: str, impls: dict[str, Callable[[], object]], per: float = 1, unit: str = "call",
            rounds: int = 5) -> None:
        times: dict[str, list[float]] = {role: [] for role in impls}
        order = list(impls)
        for fn in impls.values():  # warm-up
            fn()

        def one_round():
            for role in order:
                t0 = time.perf_counter()
                impls[role]()
                times[role].append(time.perf_counter() - t0)
            order.append(order.pop(0))

        benchmark.group = group
        benchmark.extra_info.update(per=per, unit=unit, roles=list(impls))
        benchmark.pedantic(one_round, rounds=rounds, iterations=1)
        if times[order[0]]:
            _RESULTS[group] = {"unit": unit, "rounds": len(times[order[0]]),
                               **{r: statistics.median(ts) / per for r, ts in times.items()},
                               **{f"{a}/{b}": statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))
                                  for a, b in (("old", "new"), ("new", "floor"), ("old", "floor"))
                                  if a in times and b in times}}

    return run


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    w = terminalreporter
    w.section("old vs new, side by side, interleaved in this run")
    w.line(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms: median per unit; "
           "ratios: median over rounds of the per-round ratio")
    head = (f"{'comparison':76} {'unit':>5} {'rounds':>6} {'old ms':>9} {'new ms':>9} {'floor ms':>9} "
            f"{'old/new':>8} {'new/floor':>9} {'old/floor':>9}")
    w.line(head)
    w.line("-" * len(head))
    for group, r in _RESULTS.items():
        ms = [f"{r[k] * 1e3:9.1f}" if k in r else " " * 9 for k in ("old", "new", "floor")]
        ratios = [f"{r[k]:{n - 1}.2f}x" if k in r else " " * n
                  for k, n in (("old/new", 8), ("new/floor", 9), ("old/floor", 9))]
        w.line(f"{group:76} {r['unit']:>5} {r['rounds']:6d} {' '.join(ms)} {' '.join(ratios)}")
