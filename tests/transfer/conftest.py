"""Fixtures for the transfer (pretrained MusiCNN) tests.

The weights are fetched once from the package index into the git-ignored cache
(``<project>/.cache/musicnn`` or ``$MUSIC_GENRE_CACHE/musicnn``); later runs need no network.
Offline and without a cached wheel, these tests skip with the reason (a failure in CI, where
``MUSIC_GENRE_REQUIRE_SHARED=1``).
"""

from __future__ import annotations

import os

import pytest

from music_genre.transfer.weights import WeightsUnavailable, checkpoint_prefix


@pytest.fixture(scope="session")
def msd_prefix() -> str:
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
