"""Data-processing nodes on tiny fixtures, and the pipeline through a real runner."""

from __future__ import annotations

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
from tests.helpers import FILTERED

SR = 22050
EXTRACTION = {"duration_s": 4.0, "min_duration_s": 1.0}
EXECUTION = {"n_jobs": 1, "progress": False}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_demo_collection(root, n_per_genre=3, duration_s=4.0)
    folder = root / "genres_original"
    good = (folder / "rock" / "rock.00001.wav").read_bytes()
    (folder / "rock" / "rock.00090.wav").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "pop" / "pop.00090.wav").write_bytes(b"")  # empty
    (folder / "pop" / "._pop.00001.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(200))
    (folder / "disco" / "disco.00090.wav").write_text("<html>not audio</html>")
    sf.write(folder / "metal" / "metal.00090.wav", np.zeros(SR // 4, np.float32), SR)  # 0.25 s
    stereo = np.random.default_rng(1).standard_normal((int(4 * 44100), 2)).astype(np.float32)
    sf.write(folder / "jazz" / "jazz.00091.flac", 0.1 * stereo, 44100)  # other rate, stereo
    (root / "genres_original" / "polka").mkdir()
    sf.write(root / "genres_original" / "polka" / "polka.00000.wav", 0.1 * stereo[:, 0], SR)
    return root


def test_probe_marks_every_bad_file_with_a_reason(collection):
    raw = AudioFolderDataset(path=str(collection)).load()
    probed = probe_tracks(raw, GENRES).set_index("track_id")
    reasons = probed["reason"].to_dict()
    assert probed.loc["rock.00090", "status"] == "excluded" and "truncated" in reasons["rock.00090"]
    assert "empty file" in reasons["pop.00090"]
    assert "sidecar" in reasons["._pop.00001"]
    assert "not a decodable" in reasons["disco.00090"]
    assert "not one of the genres" in reasons["polka.00000"]
    assert "not a decodable" in reasons["jazz.00051"]  # demo's deliberately broken file
    ok = probed[probed["status"] == "ok"]
    assert len(ok) == 30 + 2  # every good file kept: the 30 clips, the FLAC and the 0.25 s one
    assert probed.loc["jazz.00091", "sample_rate"] == 44100 and probed.loc["jazz.00091",
                                                                           "channels"] == 2


def test_pipeline_runs_with_a_real_runner_and_reports_without_losing_good_files(collection,
                                                                                tmp_path):
    cache = str(tmp_path / "cache")
    catalog = DataCatalog({
        "raw_audio": AudioFolderDataset(path=str(collection)),
        "predefined_split": MemoryDataset(pd.DataFrame()),
        "filtered_split_lists": MemoryDataset(FILTERED),
        "track_cache_previous": TrackCacheDataset(path=cache),
        "track_cache": TrackCacheDataset(path=cache),
        "params:genres": MemoryDataset(GENRES),
        "params:extraction": MemoryDataset(EXTRACTION),
        "params:execution": MemoryDataset(EXECUTION),
        "params:split": MemoryDataset({"val": 0.15, "test": 0.15, "seed": 1}),
    })
    # up to the manifest (kept as a free output), then the split on top of it
    SequentialRunner().run(create_pipeline().to_outputs("manifest", "features", "spectrograms"),
                           catalog)
    manifest = catalog.load("manifest")
    ok = manifest[manifest["status"] == "ok"]
    # the 0.25 s clip decodes but is shorter than min_duration_s: excluded at extraction
    assert "only 0.25 s" in manifest.set_index("track_id").loc["metal.00090", "reason"]
    assert len(ok) == 31
    features = catalog.load("features")
    assert features.shape == (31, 59) and np.isfinite(features.iloc[:, 2:].to_numpy()).all()
    specs = catalog.load("spectrograms")
    assert specs.data.shape == (31, 128, 1 + int(4.0 * SR) // 512)
    assert float(specs.data.min()) >= 0.0 and float(specs.data.max()) <= 1.0
    SequentialRunner().run(create_pipeline().only_nodes("split_tracks"), catalog)
    split = catalog.load("split")
    assert set(split["track_id"]) == set(ok["track_id"])


def _manifest(n_per_genre: int) -> pd.DataFrame:
    rows = [{"track_id": f"{g}.{i:05d}", "genre": g, "status": "ok"}
            for g in GENRES for i in range(n_per_genre)]
    return pd.DataFrame(rows)


def test_split_is_stratified_disjoint_and_seeded():
    manifest = _manifest(20)
    params = {"val": 0.15, "test": 0.15, "seed": 42}
    split = split_tracks(manifest, pd.DataFrame(), FILTERED, params)
    assert split["track_id"].is_unique and len(split) == 200
    counts = split.groupby(["genre", "split"]).size().unstack()
    assert (counts["test"] == 3).all() and (counts["val"] == 3).all() and (counts["train"] == 14).all()
    pd.testing.assert_frame_equal(split, split_tracks(manifest, pd.DataFrame(), FILTERED, params))
    other = split_tracks(manifest, pd.DataFrame(), FILTERED, {**params, "seed": 7})
    assert not split["split"].equals(other["split"])


def test_split_reads_a_predefined_csv_and_rejects_bad_ones():
    manifest = _manifest(3)
    pre = pd.DataFrame({"track_id": [f"{t}.wav" for t in manifest["track_id"]],
                        "split": ["train", "val", "test"] * 10})
    split = split_tracks(manifest, pre, FILTERED, {"val": 0.1, "test": 0.1, "seed": 0})
    assert split.groupby("split").size().to_dict() == {"test": 10, "train": 10, "val": 10}
    with pytest.raises(ValueError, match="unknown split values \\['holdout'\\]"):
        split_tracks(manifest, pre.assign(split="holdout"), FILTERED,
                     {"val": 0.1, "test": 0.1, "seed": 0})
    with pytest.raises(ValueError, match="lacks column"):
        split_tracks(manifest, pre[["track_id"]], FILTERED, {"val": 0.1, "test": 0.1, "seed": 0})
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        split_tracks(manifest, pd.DataFrame(), FILTERED, {"val": 0.6, "test": 0.6, "seed": 0})
