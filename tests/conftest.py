"""Shared test set-up: an isolated chute home per test, and the opt-in heavy marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # CI clones main elsewhere, with shared/ beside it
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ARGO_DIR = SHARED / "argo"
REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Skip @pytest.mark.heavy tests unless CHUTE_HEAVY=1 says to run them."""
    if os.environ.get("CHUTE_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="heavy trial: set CHUTE_HEAVY=1 to run")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def chute_home(tmp_path, monkeypatch) -> Path:
    """A fresh CHUTE_HOME (with its own SQLite file) for one test."""
    home = tmp_path / "chute-home"
    home.mkdir()
    monkeypatch.setenv("CHUTE_HOME", str(home))
    monkeypatch.delenv("CHUTE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CHUTE_SERVER", raising=False)
    return home


@pytest.fixture(scope="session")
def argo_dir() -> Path:
    """The conformance data: Argo's schema and examples in ../shared/argo."""
    assert ARGO_DIR.is_dir(), f"conformance data missing: {ARGO_DIR}"
    return ARGO_DIR
