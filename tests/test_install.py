"""The project as a user gets it: a wheel, installed into a fresh venv outside the source tree.

The venv receives only the wheel (``--no-deps``, offline); its third-party dependencies come from
the test's own environment through a path file added after the install, so nothing is
downloaded, the wheel's files are the only project code in the venv, and commands run from a
folder with no ``ablations/``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = (".git", ".venv", ".nox", ".ci-venv", "results", "runs", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", ".ruff_cache", ".benchmarks")


def run(cmd: list, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_trains_and_validates_with_its_built_in_arms_and_suites(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*SKIP))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", tmp_path / "wheels", src], cwd=tmp_path)
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    assert {"diffuseq/arms/v2.yaml", "diffuseq/arms/baseline.yaml", "bench/suites/smoke.yaml"} <= files

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp_path)
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    Path(purelib, "outer-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIFFUSEQ_ARMS_DIR", "DIFFUSEQ_SUITES_DIR")}
    env |= {"OMP_NUM_THREADS": "2", "DIFFUSEQ_CACHE": str(tmp_path / "cache")}
    where = run([python, "-c", "import diffuseq, bench; print(diffuseq.__file__, bench.__file__)"], cwd=work, env=env)
    assert all(p.startswith(purelib) for p in where.split()), where
    out = run([venv / "bin" / "diffuseq", "train", "--preset", "smoke", "--set", "optim.steps=2", "--no-progress"],
              cwd=work, env=env)
    assert out.startswith("done: runs/default-v2-") and list((work / "runs").glob("default-v2-*/checkpoints/step_0000002"))
    out = run([python, "-m", "bench", "validate", "smoke"], cwd=work, env=env)
    assert out.startswith(f"{purelib}/bench/suites/smoke.yaml: ok — 14 cells, 10 distinct models"), out
