"""Shared test setup: no network, and caches in a per-session temporary folder."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _offline_and_isolated(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setenv("DIFFUSEQ_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
