"""split.scheme: the fault-filtered GTZAN split shipped with the project, random, predefined."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre import splits
from music_genre.datasets import AudioFolderDataset
from music_genre.demo import GENRES
from music_genre.pipelines.data_processing.nodes import probe_tracks, split_tracks
from tests.helpers import FILTERED

PARAMS = {"scheme": "filtered", "filtered_min_coverage": 0.9, "val": 0.15, "test": 0.15,
          "seed": 42}


def _manifest(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"track_id": ids, "genre": [i.split(".")[0] for i in ids],
                         "status": "ok"})


def test_the_shipped_lists_are_443_197_290_distinct_ids_in_one_part_each():
    lists = splits.check_lists(FILTERED, "gtzan_filtered.csv")
    counts = lists.groupby("split").size().to_dict()
    assert counts == {"train": 443, "val": 197, "test": 290}
    assert lists["track_id"].is_unique and len(lists) == 930
    assert set(lists["track_id"].str.split(".").str[0]) == set(GENRES)
    # ids are GTZAN's: genre.00000 - genre.00099
    assert lists["track_id"].str.fullmatch(r"[a-z]+\.000\d\d").all()


def test_filtered_on_a_full_collection_gives_exactly_the_published_parts(tmp_path, caplog):
    # a fake full GTZAN: 1000 tiny files named like GTZAN, read by the real dataset and probe
    for g in GENRES:
        (tmp_path / g).mkdir()
        for i in range(100):
            sf.write(tmp_path / g / f"{g}.{i:05d}.wav", np.zeros(64, np.float32), 22050)
    manifest = probe_tracks(AudioFolderDataset(path=str(tmp_path)).load(), GENRES)
    assert len(manifest) == 1000 and (manifest["status"] == "ok").all()
    with caplog.at_level(logging.INFO, logger="music_genre.splits"):
        split = split_tracks(manifest, pd.DataFrame(), FILTERED, PARAMS)
    expected = FILTERED.set_index("track_id")["split"]
    got = split.set_index("track_id")["split"]
    assert len(got) == 930 and got.sort_index().equals(expected.sort_index())
    # the 70 tracks the lists leave out are named in one warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "70 present track(s) are left out" in warnings[0].getMessage()


def test_missing_listed_tracks_are_reported_once_and_the_rest_keep_their_part(caplog):
    ids = list(FILTERED["track_id"])[:-50]  # 880 of 930: above the 90 % coverage
    with caplog.at_level(logging.INFO, logger="music_genre.splits"):
        split = split_tracks(_manifest(ids), pd.DataFrame(), FILTERED, PARAMS)
    assert len(split) == 880
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "50 listed track(s) are missing" in warnings[0]
    assert split.set_index("track_id")["split"].equals(
        FILTERED.set_index("track_id").loc[split["track_id"], "split"])


def test_filtered_falls_back_to_random_on_the_sample_with_one_log_line(caplog):
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(10)]  # like the 100-track sample
    with caplog.at_level(logging.INFO, logger="music_genre.splits"):
        split = split_tracks(_manifest(ids), pd.DataFrame(), FILTERED, PARAMS)
    fallback = [r.getMessage() for r in caplog.records if "random stratified split" in
                r.getMessage()]
    assert len(fallback) == 1 and "covers 10 %" in fallback[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    random = split_tracks(_manifest(ids), pd.DataFrame(), FILTERED, {**PARAMS, "scheme": "random"})
    pd.testing.assert_frame_equal(split, random)
    assert split.groupby("split").size().to_dict() == {"test": 20, "train": 60, "val": 20}


def test_schemes_are_checked_and_predefined_needs_a_csv():
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(10)]
    with pytest.raises(ValueError, match="split.scheme: 'artist' is not one of"):
        split_tracks(_manifest(ids), pd.DataFrame(), FILTERED, {**PARAMS, "scheme": "artist"})
    with pytest.raises(ValueError, match="no split CSV was found"):
        split_tracks(_manifest(ids), pd.DataFrame(), FILTERED,
                     {**PARAMS, "scheme": "predefined"})
    with pytest.raises(ValueError, match="appear more than once"):
        splits.check_lists(pd.concat([FILTERED.head(3), FILTERED.head(1)]), "my.csv")
