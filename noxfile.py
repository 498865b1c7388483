"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s ablations`, `nox -s report`, `nox -s bench`.

torch is pinned to the CPU wheel (2.13.0) so a fresh machine never pulls a multi-GB CUDA build;
on a GPU machine install the project with your CUDA torch instead (see README).
"""

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
TORCH = os.environ.get("DIFFUSEQ_TORCH", "torch==2.13.0")


def install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{','.join(('dev', *extras))}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (offline; about 8 minutes on 2 cores, more with the real-SLURM tests)."""
    install(session, "cluster")
    session.run("pytest", *session.posargs, env={"OMP_NUM_THREADS": "2"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def ablations(session: nox.Session) -> None:
    """The main job: run a suite (default `first_look`; `nox -s ablations -- all_arms`), then its report."""
    install(session)
    suite = session.posargs[0] if session.posargs else "first_look"
    results = f"results/{Path(suite).stem}"
    session.run("python", "-m", "bench", "run", suite, "--results", results)
    session.run("python", "-m", "bench", "report", "--results", results, "--out", f"{results}/report")


@nox.session
def report(session: nox.Session) -> None:
    """Rebuild the report of every suite under results/ (or `nox -s report -- DIR`)."""
    install(session)
    dirs = session.posargs or sorted(str(p.parent) for p in Path("results").glob("*/table.parquet"))
    if not dirs:
        session.error("no results under results/: run `nox -s ablations` first")
    for d in dirs:
        session.run("python", "-m", "bench", "report", "--results", d, "--out", f"{d}/report")


@nox.session
def bench(session: nox.Session) -> None:
    """Old vs new side by side, as ratios in one table at the end (benchmarks/, pytest-benchmark):
    MBR-10 decoding, DDPM+clamp per step and DPM-Solver++ against the denoiser-forward floor, the
    clamp's search, a training step in fp32 vs bf16, evaluation. A few minutes on 2 busy cores."""
    install(session)
    session.run("pytest", "benchmarks/", "--benchmark-only", "--benchmark-columns=median,min,max,rounds",
                "-p", "no:cacheprovider", *session.posargs, env={"OMP_NUM_THREADS": "2"})
