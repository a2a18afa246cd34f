"""The pretrained weights come from the pinned PyPI wheel, cached, with a clear error offline."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from music_genre.transfer import weights
from music_genre.transfer.weights import (
    WHEEL_NAME,
    WHEEL_SHA256,
    WeightsUnavailable,
    cache_dir,
    checkpoint_prefix,
)

# A real pip call that cannot succeed: nothing listens on port 9 (discard) of this host.
UNREACHABLE = "http://127.0.0.1:9/simple"


def test_cached_checkpoint_needs_no_network(msd_prefix):
    # with an unreachable index, a second call must still succeed: it finds the cache
    t0 = time.perf_counter()
    again = checkpoint_prefix("MSD_musicnn", index_url=UNREACHABLE)
    assert again == msd_prefix
    assert time.perf_counter() - t0 < 1.0  # no pip subprocess was started
    folder = Path(msd_prefix)
    for name in (".index", ".data-00000-of-00001", "LICENSE.md"):
        assert (folder / name).is_file()
    assert (folder / ".data-00000-of-00001").stat().st_size == 9_465_596
    assert (folder.parent / "MTT_musicnn" / ".index").is_file()


def test_unreachable_index_gives_clear_error(tmp_path):
    with pytest.raises(WeightsUnavailable) as err:
        checkpoint_prefix("MSD_musicnn", cache=tmp_path, index_url=UNREACHABLE)
    message = str(err.value)
    assert "pip download --no-deps musicnn==0.1.0 -d " + str(tmp_path.resolve()) in message
    assert WHEEL_NAME in message and WHEEL_SHA256 in message
    assert UNREACHABLE in message
    assert "pip said:" in message
    assert not (tmp_path / "MSD_musicnn").exists()


def test_hand_placed_wheel_is_verified_and_used_offline(msd_prefix, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / WHEEL_NAME).write_bytes(b"not a wheel")
    with pytest.raises(WeightsUnavailable, match="sha256"):
        checkpoint_prefix("MSD_musicnn", cache=bad, index_url=UNREACHABLE)

    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(Path(msd_prefix).parent / WHEEL_NAME, good / WHEEL_NAME)
    prefix = checkpoint_prefix("MTT_musicnn", cache=good, index_url=UNREACHABLE)
    assert prefix == str(good.resolve() / "MTT_musicnn") + "/"
    assert (good / "MTT_musicnn" / ".index").read_bytes() == (
        Path(msd_prefix).parent / "MTT_musicnn" / ".index"
    ).read_bytes()


def test_cache_location_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MUSIC_GENRE_CACHE", raising=False)
    assert cache_dir() == weights.project_root().resolve() / ".cache" / "musicnn"
    monkeypatch.setenv("MUSIC_GENRE_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path.resolve() / "musicnn"
    assert cache_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    with pytest.raises(ValueError, match="unknown musicnn model"):
        checkpoint_prefix("MSD_musicnn_big", cache=tmp_path)
