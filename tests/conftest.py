"""Shared fixtures: where the real GTZAN sample lives, and the rule for tests that need it.

Tests that need ``../shared`` (the 100 real GTZAN tracks and the Kaggle feature table) skip with a
reason on a user's clone, where it is absent. CI sets ``MUSIC_GENRE_REQUIRE_SHARED=1`` and then a
missing ``../shared`` is a failure, so those tests always run there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSIC_GENRE_SHARED", PROJECT_ROOT.parent / "shared"))
GTZAN_MINI = SHARED / "data" / "gtzan_mini"
KAGGLE_FEATURES = SHARED / "data" / "gtzan_features" / "features_30_sec.csv"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"{path} is absent: the real GTZAN sample lives in ../shared beside the project"
    if os.environ.get("MUSIC_GENRE_REQUIRE_SHARED") == "1":
        pytest.fail(message + " (MUSIC_GENRE_REQUIRE_SHARED=1, so this is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def gtzan_mini() -> Path:
    """Root of the 100-track real GTZAN sample (Kaggle layout: genres_original/<genre>/...)."""
    return _require(GTZAN_MINI)


@pytest.fixture(scope="session")
def kaggle_features() -> Path:
    """The Kaggle features_30_sec.csv table, an independent librosa computation."""
    return _require(KAGGLE_FEATURES)
