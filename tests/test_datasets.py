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
