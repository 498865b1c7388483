"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s ablations`, `nox -s report`, `nox -s bench`.

torch is pinned to the CPU wheel (2.13.0) so a fresh machine never pulls a multi-GB CUDA build;
on a GPU machine install the project with your CUDA torch instead (see README).
"""

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
TORCH = os.environ.get("DIFFUSEQ_TORCH", "torch==2.13.0")


def install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{','.join(('dev', *extras))}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (fast, offline; ~10 minutes on 2 cores)."""
    install(session, "cluster")
    session.run("pytest", *session.posargs, env={"OMP_NUM_THREADS": "2"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session
def ablations(session: nox.Session) -> None:
    """The main job. Until the harness lands: train each of the four arms at the smoke preset."""
    install(session)
    for arm in ("baseline", "hard_mask", "absorb_train_only", "v2"):
        session.run("diffuseq", "train", "--preset", "smoke", "--arm", arm, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Training throughput at PEER-CPU (see bench/bench_train.py)."""
    install(session)
    session.run("python", "bench/bench_train.py", *session.posargs)
