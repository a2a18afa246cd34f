"""The project's Kedro datasets: raw audio listing, extraction cache, spectrogram store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from music_genre.datasets import (
    AudioFolderDataset,
    OptionalCSVDataset,
    SpectrogramDataset,
    SpectrogramSet,
    TrackCacheDataset,
)


@pytest.mark.parametrize("layout,suffix", [("genres_original", "wav"), ("genres", "au")])
def test_audio_folder_reads_both_gtzan_layouts(tmp_path, layout, suffix):
    for genre in ("blues", "rock"):
        folder = tmp_path / layout / genre
        folder.mkdir(parents=True)
        for i in range(2):
            (folder / f"{genre}.{i:05d}.{suffix}").write_bytes(b"x")
    (tmp_path / layout / "rock" / "._rock.00000.wav").write_bytes(b"x")  # reported, not hidden
    (tmp_path / layout / "rock" / "README.txt").write_text("ignored")
    table = AudioFolderDataset(path=str(tmp_path)).load()
    assert sorted(table["track_id"]) == ["._rock.00000", "blues.00000", "blues.00001",
                                         "rock.00000", "rock.00001"]
    assert set(table["genre"]) == {"blues", "rock"}
    assert table["relpath"].str.startswith(layout + "/").all()


def test_audio_folder_says_how_to_get_the_data_when_empty(tmp_path):
    with pytest.raises(DatasetError) as err:
        AudioFolderDataset(path=str(tmp_path / "nothing")).load()
    text = str(err.value)
    assert "nothing" in text and "kedro run --pipeline download" in text and "raw_root" in text


def test_audio_folder_generates_the_synthetic_demo(tmp_path):
    table = AudioFolderDataset(path=str(tmp_path),
                               synthetic={"n_per_genre": 1, "duration_s": 1.0}).load()
    assert len(table) == 11 and table["genre"].nunique() == 10  # one clip each + broken file


def test_track_cache_adds_entries_and_reads_them_back(tmp_path):
    ds = TrackCacheDataset(path=str(tmp_path / "cache"))
    assert len(ds.load()) == 0
    ds.save({"abc": {"features": np.arange(3.0), "status": np.array("ok")}})
    ds.save({"def": {"features": np.ones(3), "status": np.array("ok")}})
    cache = ds.load()
    assert sorted(cache) == ["abc", "def"] and "abc" in cache and "zzz" not in cache
    np.testing.assert_array_equal(cache["abc"]["features"], [0.0, 1.0, 2.0])
    assert str(cache["def"]["status"]) == "ok"


def test_spectrogram_store_is_versioned_float16_and_memory_mapped(tmp_path):
    data = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    ds = SpectrogramDataset(filepath=str(tmp_path / "specs"), version=Version(None, None))
    ds.save(SpectrogramSet(np.array(["a", "b", "c"]), data))
    loaded = SpectrogramDataset(filepath=str(tmp_path / "specs"), version=Version(None, None)).load()
    assert isinstance(loaded.data, np.memmap) and loaded.data.dtype == np.float16
    assert list(loaded.track_ids) == ["a", "b", "c"]
    np.testing.assert_allclose(loaded.data, data, atol=1e-3)
    assert list(loaded.index_of(["c", "a"])) == [2, 0]
    with pytest.raises(KeyError, match="zz"):
        loaded.index_of(["zz"])
    assert len(list((tmp_path / "specs").iterdir())) == 1  # one timestamped version folder


def test_optional_csv(tmp_path):
    assert OptionalCSVDataset(filepath=str(tmp_path / "absent.csv")).load().empty
    path = tmp_path / "split.csv"
    pd.DataFrame({"track_id": ["a"], "split": ["test"]}).to_csv(path, index=False)
    assert OptionalCSVDataset(filepath=str(path)).load()["split"].tolist() == ["test"]


def test_track_cache_fields_read_once_and_follow_a_replaced_entry(tmp_path, monkeypatch):
    ds = TrackCacheDataset(path=str(tmp_path / "cache"))
    ds.save({"abc": {"features": np.arange(3.0), "status": np.array("ok"),
                     "mel": np.ones((2, 2), np.float16)}})
    cache = ds.load()
    got = cache.fields("abc", ["status", "features", "mel", "absent"])
    assert sorted(got) == ["features", "mel", "status"]
    np.testing.assert_array_equal(got["features"], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError):  # shared with the next reader: read-only
        got["features"][0] = 5.0
    # the small members come from the memo now: the .npz is not opened again for them ...
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: opened.append(a[0]) or real_load(*a, **k))
    np.testing.assert_array_equal(cache.fields("abc", ["features"])["features"], [0, 1, 2])
    assert opened == []
    assert cache.fields("abc", ["mel"])["mel"].shape == (2, 2) and len(opened) == 1  # large: read
    # ... until the entry is replaced (a chain added later: another file)
    ds.save({"abc": {"features": np.arange(4.0), "status": np.array("ok")}})
    np.testing.assert_array_equal(ds.load().fields("abc", ["features"])["features"],
                                  [0, 1, 2, 3])
    with pytest.raises(KeyError):
        cache.fields("zzz", ["features"])


def test_spectrogram_store_links_an_unchanged_set_instead_of_writing_it_again(tmp_path):
    import time

    class Named(np.ndarray):  # a set that names its content, as the cache-backed one does
        content_id = "same-entries"

    data = np.random.default_rng(0).random((3, 4, 5)).astype(np.float16).view(Named)
    ids = np.array(["a", "b", "c"])

    def save(arr, track_ids=ids):
        SpectrogramDataset(filepath=str(tmp_path / "specs"), version=Version(None, None)).save(
            SpectrogramSet(track_ids, arr))
        time.sleep(0.002)  # a new version timestamp
        return sorted((tmp_path / "specs").glob("*/specs/data.npy"))[-1]

    first, second = save(data), save(data)
    assert first != second and first.stat().st_ino == second.stat().st_ino  # one file, two names
    loaded = SpectrogramDataset(filepath=str(tmp_path / "specs"), version=Version(None, None))
    np.testing.assert_array_equal(loaded.load().data, data)
    third = save(data, np.array(["a", "b", "d"]))  # other tracks: written anew
    other = (data * 0.5).view(Named)
    other_content = type("Other", (Named,), {"content_id": "other-entries"})
    fourth = save(other.view(other_content))
    assert len({p.stat().st_ino for p in (second, third, fourth)}) == 3
    np.testing.assert_array_equal(np.load(fourth), data * 0.5)
    plain = save(np.asarray(data))  # no content id: always written
    assert plain.stat().st_ino != fourth.stat().st_ino
