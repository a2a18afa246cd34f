"""Duplicate tracks in a raw folder (issue 16): the same id in two files, the same audio under
two ids. One warning that lists them with the rule that kept the other, a run that finishes,
and no track id in two parts of the split."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.datasets import AudioFolderDataset, TrackCacheDataset
from music_genre.demo import GENRES, write_demo_collection
from music_genre.pipelines.data_processing import create_pipeline
from music_genre.pipelines.data_processing.nodes import probe_tracks, split_tracks
from tests.helpers import TINY, key_memo_datasets, latest, make_project, run

EXTRACTION = {"duration_s": 4.0, "min_duration_s": 1.0}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """The demo collection plus the issue's cases: ``blues.00001`` as WAV and AU,
    ``rock.00002.wav`` copied under ``metal/``, and ``country.00001``'s audio under a new id."""
    root = tmp_path_factory.mktemp("raw")
    write_demo_collection(root, n_per_genre=4, duration_s=4.0)
    folder = root / "genres_original"
    y, sr = sf.read(folder / "blues" / "blues.00001.wav", dtype="float32")
    sf.write(folder / "blues" / "blues.00001.au", y, sr, format="AU", subtype="PCM_16")
    shutil.copy(folder / "rock" / "rock.00002.wav", folder / "metal" / "rock.00002.wav")
    shutil.copy(folder / "country" / "country.00001.wav", folder / "metal" / "metal.00077.wav")
    return root


def test_probe_keeps_one_file_per_id_by_the_documented_rule(collection):
    probed = probe_tracks(AudioFolderDataset(path=str(collection)).load(), GENRES)
    ok = probed[probed["status"] == "ok"]
    assert not ok["track_id"].duplicated().any()
    kept = ok.set_index("track_id")["path"]
    assert kept["blues.00001"].endswith("blues/blues.00001.wav")  # WAV before AU
    assert kept["rock.00002"].endswith("rock/rock.00002.wav")  # the folder its id names
    excluded = probed[probed["status"] == "excluded"].set_index("path")["reason"]
    au = next(r for p, r in excluded.items() if p.endswith("blues.00001.au"))
    assert "duplicate of track id 'blues.00001'" in au and "blues.00001.wav" in au


def test_run_with_duplicates_finishes_with_one_warning_and_a_clean_split(collection, tmp_path,
                                                                         caplog):
    cache = str(tmp_path / "cache")
    catalog = DataCatalog({
        "raw_audio": AudioFolderDataset(path=str(collection)),
        "predefined_split": MemoryDataset(pd.DataFrame()),
        "filtered_split_lists": MemoryDataset(pd.DataFrame({"track_id": [], "split": []})),
        "track_cache_previous": TrackCacheDataset(path=cache),
        **key_memo_datasets(tmp_path),
        "track_cache": TrackCacheDataset(path=cache),
        "params:genres": MemoryDataset(GENRES),
        "params:extraction": MemoryDataset(EXTRACTION),
        "params:execution": MemoryDataset({"n_jobs": 1, "progress": False}),
        "params:rich_features": MemoryDataset({"segment_s": 3.0}),
        "params:augmentation": MemoryDataset({"degradations": []}),
        "params:split": MemoryDataset({"scheme": "random", "val": 0.25, "test": 0.25,
                                       "seed": 3}),
    })
    pipeline = create_pipeline()
    with caplog.at_level(logging.WARNING):
        SequentialRunner().run(pipeline.to_outputs("manifest", "features", "spectrograms"),
                               catalog)
        SequentialRunner().run(pipeline.only_nodes("split_tracks"), catalog)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("music_genre")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "blues.00001.au: duplicate of track id" in text
    assert "metal/rock.00002.wav: duplicate of track id 'rock.00002'" in text
    assert "metal.00077.wav: the same audio as" in text and "country.00001.wav" in text
    manifest = catalog.load("manifest")
    ok = manifest[manifest["status"] == "ok"]
    features, split = catalog.load("features"), catalog.load("split")
    assert not ok["track_id"].duplicated().any() and not split["track_id"].duplicated().any()
    # the tables a model pairs up have the same ids (the issue's [66, 62] crash)
    assert sorted(features["track_id"]) == sorted(split["track_id"]) == sorted(ok["track_id"])
    # every original file kept, only the three duplicates excluded
    assert set(ok["track_id"]) == {f"{g}.{i:05d}" for g in GENRES for i in range(4)}
    duplicates = manifest["reason"].str.contains("duplicate of track id|the same audio as")
    assert duplicates.sum() == 3


def test_split_never_puts_one_id_in_two_parts():
    rows = [{"track_id": f"{g}.{i:05d}", "genre": g, "status": "ok"}
            for g in GENRES for i in range(6)]
    rows += [{"track_id": "rock.00001", "genre": "metal", "status": "ok"}]  # same id, 2 genres
    random = {"scheme": "random", "val": 0.2, "test": 0.2, "seed": 0}
    split = split_tracks(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(), random)
    assert not split["track_id"].duplicated().any() and len(split) == 60
    conflicting = pd.DataFrame({"track_id": ["rock.00001", "rock.00001"],
                                "split": ["train", "test"]})
    with pytest.raises(ValueError, match="more than once"):
        split_tracks(pd.DataFrame(rows), conflicting, pd.DataFrame(), {"scheme": "predefined"})
    assert np.all(split.groupby("track_id")["split"].nunique() == 1)


@pytest.mark.slow  # kedro run --pipeline rf in a session
def test_rf_run_on_a_folder_with_duplicates_finishes(collection, tmp_path, caplog):
    """The issue's failing command, ``kedro run --pipeline rf --params raw_root=<folder>`` in the
    demo env, on the folder with duplicates: it finishes; the model's metrics record what it was
    trained on; a second run with the same override warns that it replaces the latest versions."""
    project = make_project(tmp_path / "project")
    params = {**TINY, "extraction": EXTRACTION, "raw_root": str(collection)}
    run(project, "rf", env="demo", params=params)
    data = project / "data" / "demo"
    metrics = json.loads(latest(data / "08_reporting" / "rf" / "metrics.json",
                                "metrics.json").read_text())
    assert metrics["training_data"]["synthetic"] is False  # real files, not the demo's audio
    assert metrics["training_data"]["description"] == f"audio files under {collection}"
    split = pd.read_csv(latest(data / "05_model_input" / "split.csv", "split.csv"))
    assert not split["track_id"].duplicated().any()
    with caplog.at_level(logging.WARNING, logger="music_genre.hooks"):
        run(project, "data_processing", env="demo", params=params)
    replaced = [r.getMessage() for r in caplog.records
                if r.name == "music_genre.hooks" and r.levelno == logging.WARNING]
    assert len(replaced) == 1 and "manifest" in replaced[0] and "raw_root" in replaced[0]
