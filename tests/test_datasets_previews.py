"""kedro-viz previews of the project's datasets: the kedro-viz type each declares, with content
that shows the data (counts that match, decodable audio, a real PNG)."""

from __future__ import annotations

import base64
import inspect
import re

import numpy as np
import pandas as pd
import soundfile as sf

from music_genre.datasets import (
    AudioFolderDataset,
    LatestTableDataset,
    OptionalCSVDataset,
    SpectrogramDataset,
    SpectrogramSet,
    TrackCacheDataset,
)


def _kind(dataset) -> str:
    # what kedro-viz reads (node_metadata.set_preview_type); a string under postponed annotations
    annotation = inspect.signature(dataset.preview).return_annotation
    return getattr(annotation, "__name__", str(annotation))


def test_audio_folder_preview_counts_genres_and_plays_clips(tmp_path):
    rng = np.random.default_rng(0)
    for genre, n in (("blues", 2), ("jazz", 1), ("rock", 3)):
        folder = tmp_path / "genres_original" / genre
        folder.mkdir(parents=True)
        for i in range(n):
            sf.write(folder / f"{genre}.{i:05d}.wav", 0.1 * rng.standard_normal(22050 * 8), 22050)
    (tmp_path / "genres_original" / "jazz" / "jazz.00009.wav").write_bytes(b"broken")
    dataset = AudioFolderDataset(path=str(tmp_path))
    assert _kind(dataset) == "HTMLPreview"
    page = dataset.preview(n_clips=2, seconds=3.0)
    assert "7 files in 3 genres" in page
    assert "<td>jazz</td><td>2</td>" in page and "<td>rock</td><td>3</td>" in page
    clips = re.findall(r'src="data:audio/ogg;base64,([^"]+)"', page)
    assert len(clips) == 2  # blues and jazz (n_clips=2)
    import io

    y, sr = sf.read(io.BytesIO(base64.b64decode(clips[0])))
    assert sr == 22050 and abs(len(y) / sr - 3.0) < 0.05


def test_audio_folder_preview_of_an_empty_root_generates_nothing(tmp_path):
    dataset = AudioFolderDataset(path=str(tmp_path / "raw"), synthetic={"n_per_genre": 1})
    assert "No audio under" in dataset.preview()
    assert not (tmp_path / "raw").exists()


def test_spectrogram_preview_is_a_png(tmp_path):
    dataset = SpectrogramDataset(filepath=str(tmp_path / "spec"))
    data = np.random.default_rng(1).random((9, 16, 40)).astype(np.float16)
    dataset.save(SpectrogramSet(np.array([f"t{i}" for i in range(9)]), data))
    assert _kind(dataset) == "ImagePreview"
    png = base64.b64decode(dataset.preview(n=3))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_track_cache_preview_lists_entries(tmp_path):
    dataset = TrackCacheDataset(path=str(tmp_path / "cache"))
    dataset.save({f"k{i}": {"status": np.array("ok"), "reason": np.array(""),
                            "features": np.zeros(57), "mel": np.zeros((8, 4), np.float16)}
                  for i in range(12)})
    assert _kind(dataset) == "TablePreview"
    table = dataset.preview(nrows=5)
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    assert len(frame) == 5 and (frame["of"] == 12).all() and (frame["status"] == "ok").all()
    assert frame["stored"].iloc[0] == "features (57,), mel (8, 4)"


def test_csv_previews(tmp_path):
    split = tmp_path / "split.csv"
    pd.DataFrame({"track_id": list("abcdef"), "genre": ["blues"] * 3 + ["rock"] * 3,
                  "split": ["train", "train", "test", "train", "val", "test"]}).to_csv(split)
    optional = OptionalCSVDataset(filepath=str(split))
    assert _kind(optional) == "TablePreview"
    counts = pd.DataFrame(**{k: optional.preview()[k] for k in ("columns", "data")})
    assert counts.set_index("genre").loc["blues", "train"] == 2
    assert OptionalCSVDataset(filepath=str(tmp_path / "absent.csv")).preview()["data"] == []

    latest = LatestTableDataset(filepath=str(tmp_path / "results.csv"))
    assert latest.preview()["data"] == []
    for version, n in (("2026-01-01T00.00.00.000Z", 3), ("2026-01-02T00.00.00.000Z", 5)):
        (tmp_path / "results.csv" / version).mkdir(parents=True)
        pd.DataFrame({"x": range(n)}).to_csv(tmp_path / "results.csv" / version / "results.csv",
                                             index=False)
    assert len(latest.preview(nrows=10)["data"]) == 5  # the newest version
