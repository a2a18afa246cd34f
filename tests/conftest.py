"""Shared fixtures: where the real GTZAN sample lives, and the rule for tests that need it; the
pretrained MusiCNN weights; which tests are slow.

Slow tests (Kedro sessions, servers, a browser, Dask, Keras training, the 100 real tracks) carry
``@pytest.mark.slow``; every test that uses a fixture of ``SLOW_FIXTURES`` is marked here too.
``pytest -m "not slow"`` is the fast set a developer runs; ``pytest`` (CI) runs everything.

Tests that need ``../shared`` (the 100 real GTZAN tracks and the Kaggle feature table) skip with a
reason on a user's clone, where it is absent. CI sets ``MUSIC_GENRE_REQUIRE_SHARED=1`` and then a
missing ``../shared`` is a failure, so those tests always run there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# fixture modules shared by several folders (a plugin's fixtures are visible to every test)
pytest_plugins = ["tests.gtzan_server", "tests.transfer_demo", "tests.tuning_data"]

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


@pytest.fixture(scope="session")
def msd_prefix() -> str:
    """The pretrained MusiCNN (MSD) checkpoint. The weights are fetched once from the package
    index into the git-ignored cache (``<project>/.cache/musicnn`` or ``$MUSIC_GENRE_CACHE/
    musicnn``); later runs need no network. Offline and without a cached wheel: a skip with the
    reason (a failure in CI, where ``MUSIC_GENRE_REQUIRE_SHARED=1``)."""
    from music_genre.transfer.weights import WeightsUnavailable, checkpoint_prefix

    try:
        return checkpoint_prefix("MSD_musicnn")
    except WeightsUnavailable as exc:
        if os.environ.get("MUSIC_GENRE_REQUIRE_SHARED") == "1":
            pytest.fail(str(exc))
        pytest.skip(f"pretrained MusiCNN weights unavailable: {exc}")


@pytest.fixture(scope="session")
def msd_model(msd_prefix):
    from music_genre.transfer.musicnn import load_musicnn

    return load_musicnn("MSD_musicnn")


#: session fixtures that train a whole project or run a pipeline with the pretrained network:
#: every test using one (directly or through another fixture) is slow
SLOW_FIXTURES = {
    "api_project": "trains rf, rf_robust, mlp and cnn through a KedroSession (tests/api)",
    "transfer_trained": "the transfer pipeline with the pretrained MusiCNN (tests/transfer_demo.py)",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
