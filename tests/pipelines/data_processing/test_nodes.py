"""Data-processing nodes on tiny fixtures, and the pipeline through a real runner."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.pickle import PickleDataset

from music_genre import audio
from music_genre.datasets import AudioFolderDataset, OptionalCSVDataset, TrackCacheDataset
from music_genre.demo import GENRES, write_demo_collection
from music_genre.pipelines.data_processing import create_pipeline, nodes
from music_genre.pipelines.data_processing.nodes import (
    extract_tracks,
    probe_tracks,
    split_tracks,
)
from tests.helpers import FILTERED, key_memo_datasets

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
        **key_memo_datasets(tmp_path),
        "track_cache": TrackCacheDataset(path=cache),
        # read by the rich-tables node too: a file, so the runner does not release it
        "manifest": PickleDataset(filepath=str(tmp_path / "manifest.pkl")),
        "params:genres": MemoryDataset(GENRES),
        "params:extraction": MemoryDataset(EXTRACTION),
        "params:execution": MemoryDataset(EXECUTION),
        "params:rich_features": MemoryDataset({"segment_s": 3.0}),
        "params:augmentation": MemoryDataset({"degradations": ["resample_8k"]}),
        "params:split": MemoryDataset({"val": 0.15, "test": 0.15, "seed": 1}),
    })
    # up to the manifest (kept as a free output), then the split on top of it
    SequentialRunner().run(create_pipeline().to_outputs(
        "manifest", "features", "spectrograms", "rich_features", "degraded_features"), catalog)
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

    # one pass per track, one implementation: the rich table starts with the 57, bit for bit,
    # and the degraded copy's row is audio.degrade then the same analysis
    rich, degraded = catalog.load("rich_features"), catalog.load("degraded_features")
    assert list(rich["track_id"]) == list(features["track_id"])
    assert rich.shape == (31, 2 + len(audio.rich_feature_names(audio.ExtractionParams())))
    np.testing.assert_array_equal(rich.iloc[:, 2:59].to_numpy(), features.iloc[:, 2:].to_numpy())
    assert list(degraded["degradation"].unique()) == ["resample_8k"] and len(degraded) == 31
    params = audio.ExtractionParams(**EXTRACTION)
    row = manifest.set_index("track_id").loc["jazz.00091"]  # 44.1 kHz stereo FLAC
    y = audio.fix_length(audio.load_audio(row["path"], sr=SR), params.n_samples)
    with audio._one_blas_thread():  # as the workers: one BLAS summation order
        expected = audio.rich_features(audio.degrade(y, SR, "resample_8k"), params)
    got = degraded.set_index("track_id").loc["jazz.00091"].iloc[2:].to_numpy(float)
    np.testing.assert_array_equal(got, expected)
    assert len(list(TrackCacheDataset(path=cache).load())) == 32  # one entry per decoded file


def test_extraction_streams_chunks_and_a_new_chain_computes_only_that_chain(collection,
                                                                            tmp_path):
    assert inspect.isgeneratorfunction(extract_tracks)  # Kedro saves each yielded chunk
    listing = AudioFolderDataset(path=str(collection)).load()
    probed = probe_tracks(listing, GENRES)
    probed = probed[probed["status"] == "ok"].iloc[:5]
    store = TrackCacheDataset(path=str(tmp_path / "cache"))
    execution = {**EXECUTION, "cache_write_every": 2}
    rich = {"segment_s": 1.0}

    def run(chains):
        chunks = []
        for chunk, keys in extract_tracks(probed, store.load(), EXTRACTION, rich,
                                          {"degradations": chains}, execution):
            chunks.append(sorted(chunk))
            store.save(chunk)
        return chunks, keys

    chunks, keys = run([])
    assert [len(c) for c in chunks] == [2, 2, 1]  # written as they come, never all at once
    first = {k: store.load()[k] for k in keys["cache_key"]}
    assert all(len(e["degraded"]) == 0 for e in first.values())
    chunks, _ = run(["resample_8k"])  # a chain added: the same entries, that chain added
    assert sum(map(len, chunks)) == 5
    for key, old in first.items():
        new = store.load()[key]
        np.testing.assert_array_equal(new["features"], old["features"])
        np.testing.assert_array_equal(new["mel"], old["mel"])
        assert list(new["degraded_chains"]) == ["resample_8k"] and new["degraded"].shape[0] == 1
    assert run(["resample_8k"])[0] == [[]]  # nothing left to do: one empty chunk


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


def test_cache_keys_reuse_the_last_runs_key_of_an_unchanged_file(tmp_path, monkeypatch):
    import os

    files = []
    for i in range(3):
        path = tmp_path / f"t{i}.wav"
        sf.write(path, np.full(800, 0.01 * (i + 1), np.float32), 8000)
        files.append(str(path))
    params = audio.ExtractionParams(duration_s=1.0)
    first = nodes._cache_keys(files, params, 3.0, None, rehash=False)
    assert list(first.columns) == nodes.KEY_MEMO_COLUMNS and first["cache_key"].is_unique
    # the memo as the next run reads it back (all strings)
    memo_file = tmp_path / "track_keys.csv"
    CSVDataset(filepath=str(memo_file), save_args={"index": False}).save(
        nodes.remember_keys(first.assign(track_id=["a", "b", "c"])))
    memo = OptionalCSVDataset(filepath=str(memo_file),
                              load_args={"dtype": str, "keep_default_na": False}).load()
    hashed = []
    real = nodes._cache_key
    monkeypatch.setattr(nodes, "_cache_key", lambda p, *a: hashed.append(p) or real(p, *a))
    again = nodes._cache_keys(files, params, 3.0, memo, rehash=False)
    assert hashed == [] and list(again["cache_key"]) == list(first["cache_key"])
    # new bytes in one file (a new mtime): that file alone is read, and gets a new key
    sf.write(files[1], np.full(800, 0.5, np.float32), 8000)
    st = os.stat(files[1])
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed = nodes._cache_keys(files, params, 3.0, memo, rehash=False)
    assert hashed == [files[1]] and changed["cache_key"][1] != first["cache_key"][1]
    assert list(changed["cache_key"][[0, 2]]) == list(first["cache_key"][[0, 2]])
    # other extraction parameters, or rehash_audio: every file is read again
    hashed.clear()
    nodes._cache_keys(files, audio.ExtractionParams(duration_s=2.0), 3.0, memo, rehash=False)
    assert hashed == files
    hashed.clear()
    nodes._cache_keys(files, params, 3.0, memo, rehash=True)
    assert hashed == files
