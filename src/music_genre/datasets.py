"""Kedro datasets for audio collections, the per-track extraction cache and spectrogram stores.

Nodes never build file paths: these classes own the on-disk layouts and hand nodes plain Python
objects (tables, mappings, memory-mapped arrays).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, AbstractVersionedDataset, DatasetError
from kedro.io.core import Version

from music_genre.audio import AUDIO_SUFFIXES

logger = logging.getLogger(__name__)

# The two layouts GTZAN is published in: Kaggle's and the original archive's.
LAYOUTS = ("genres_original", "genres")


class AudioFolderDataset(AbstractDataset[None, pd.DataFrame]):
    """A GTZAN-style folder of audio: ``<root>/{genres_original|genres}/<genre>/<genre>.NNNNN.ext``.

    Loading lists the files (it does not decode them): a table with ``relpath``, ``path``,
    ``genre`` (the parent folder) and ``track_id`` (the file stem). Files with other suffixes and
    macOS ``._*`` sidecars are listed too, so ingestion can report them.

    With ``synthetic`` set (the ``demo`` environment) an empty root is first filled with the
    deterministic synthetic collection of :mod:`music_genre.demo`.
    """

    def __init__(
        self,
        *,
        path: str,
        synthetic: dict[str, Any] | None = None,
        optional: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._root = Path(path)
        self._synthetic = synthetic
        self._optional = optional  # absent or empty: an empty table instead of an error
        self.metadata = metadata

    def _find_files(self) -> list[Path]:
        if not self._root.is_dir():
            return []
        files = []
        for dirpath, _dirnames, filenames in os.walk(self._root):
            for name in filenames:
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_SUFFIXES or name.startswith("._"):
                    files.append(p)
        return sorted(files)

    def load(self) -> pd.DataFrame:
        files = self._find_files()
        if not files and self._synthetic is not None:
            from music_genre.demo import write_demo_collection

            logger.info("Generating the synthetic demo collection under %s", self._root)
            write_demo_collection(self._root, **self._synthetic)
            files = self._find_files()
        if not files and self._optional:
            return pd.DataFrame(columns=["track_id", "genre", "relpath", "path"])
        if not files:
            raise DatasetError(
                f"No audio files under '{self._root}'. Put GTZAN there in either published "
                f"layout ('{self._root}/genres_original/<genre>/<genre>.00000.wav' or "
                f"'{self._root}/genres/<genre>/<genre>.00000.au'), run "
                "'kedro run --pipeline download' to fetch it, point the project elsewhere with "
                "'kedro run --params \"raw_root=/path/to/gtzan\"', or try the synthetic demo "
                "with 'kedro run --env demo'."
            )
        rows = [
            {
                "track_id": p.stem,
                "genre": p.parent.name,
                "relpath": p.relative_to(self._root).as_posix(),
                "path": str(p),
            }
            for p in files
        ]
        return pd.DataFrame(rows)

    def save(self, data: None) -> None:
        raise DatasetError("AudioFolderDataset is read-only: it lists the raw audio")

    def _exists(self) -> bool:
        return bool(self._find_files())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root), "synthetic": self._synthetic is not None}


class TrackCache(Mapping):
    """Read-only mapping ``cache key -> {features, mel, ...}`` over a folder of ``.npz`` files."""

    def __init__(self, root: Path):
        self._root = root

    def _path(self, key: str) -> Path:
        return self._root / f"{key}.npz"

    def __getitem__(self, key: str) -> dict[str, np.ndarray]:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(key)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._path(key).is_file()

    def __iter__(self) -> Iterator[str]:
        if not self._root.is_dir():
            return iter(())
        return (p.stem for p in sorted(self._root.glob("*.npz")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class TrackCacheDataset(AbstractDataset[Mapping[str, Mapping[str, Any]], TrackCache]):
    """Content-addressed cache of per-track extraction results (one ``.npz`` per track).

    The key of an entry hashes the audio bytes and the extraction parameters, so unchanged audio
    is never analysed twice and any parameter change misses the cache. Saving only adds entries;
    loading returns a lazy :class:`TrackCache`. Two catalog entries may point at one folder (one
    read before extraction, one written by it): Kedro pipelines must stay acyclic.
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(path)
        self.metadata = metadata

    def load(self) -> TrackCache:
        return TrackCache(self._root)

    def save(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        for key, entry in data.items():
            target = self._root / f"{key}.npz"
            tmp = self._root / f".{key}.tmp.npz"
            np.savez(tmp, **{k: np.asarray(v) for k, v in entry.items()})
            os.replace(tmp, target)  # atomic: an interrupted run never leaves half an entry

    def _exists(self) -> bool:
        return self._root.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root)}


@dataclass
class SpectrogramSet:
    """Spectrograms of many tracks: ``data[i]`` is track ``track_ids[i]`` (n_mels × n_frames).

    ``data`` is a read-only memory map when loaded from disk, so a model can stream batches
    without holding every spectrogram in RAM.
    """

    track_ids: np.ndarray
    data: np.ndarray

    def __post_init__(self) -> None:
        self.track_ids = np.asarray(self.track_ids, dtype=str)
        if len(self.track_ids) != len(self.data):
            raise ValueError(
                f"SpectrogramSet: {len(self.track_ids)} track ids for {len(self.data)} arrays"
            )

    def __len__(self) -> int:
        return len(self.track_ids)

    def index_of(self, track_ids) -> np.ndarray:
        lookup = {t: i for i, t in enumerate(self.track_ids)}
        missing = [t for t in track_ids if t not in lookup]
        if missing:
            raise KeyError(f"no spectrogram for tracks {missing[:5]} ({len(missing)} missing)")
        return np.array([lookup[t] for t in track_ids], dtype=np.int64)


class SpectrogramDataset(AbstractVersionedDataset[SpectrogramSet, SpectrogramSet]):
    """A :class:`SpectrogramSet` as a folder: ``data.npy`` (memory-mappable) + ``track_ids.json``.

    float16 keeps 1000 GTZAN spectrograms (128 × 1292) at 330 MB per version.
    """

    def __init__(
        self,
        *,
        filepath: str,
        dtype: str = "float16",
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._dtype = np.dtype(dtype)
        self.metadata = metadata

    def load(self) -> SpectrogramSet:
        folder = Path(self._get_load_path())
        ids = json.loads((folder / "track_ids.json").read_text())
        data = np.load(folder / "data.npy", mmap_mode="r")
        return SpectrogramSet(np.asarray(ids, dtype=str), data)

    def save(self, data: SpectrogramSet) -> None:
        folder = Path(self._get_save_path())
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        arr = np.lib.format.open_memmap(
            tmp / "data.npy", mode="w+", dtype=self._dtype, shape=data.data.shape
        )
        for i in range(0, len(data.data), 64):  # chunked copy: never a second full copy in RAM
            arr[i : i + 64] = data.data[i : i + 64]
        arr.flush()
        del arr
        (tmp / "track_ids.json").write_text(json.dumps([str(t) for t in data.track_ids]))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / "data.npy").is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dtype": str(self._dtype),
                "version": self._version}


class OptionalCSVDataset(AbstractDataset[None, pd.DataFrame]):
    """A CSV a user may provide (e.g. a predefined split); an empty table when it is absent."""

    def __init__(self, *, filepath: str | None = None, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath) if filepath else None
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        if self._filepath is None or not self._filepath.is_file():
            return pd.DataFrame()
        try:
            return pd.read_csv(self._filepath)
        except Exception as exc:
            raise DatasetError(f"{self._filepath}: cannot read this CSV ({exc})") from exc

    def save(self, data: None) -> None:
        raise DatasetError("OptionalCSVDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}



class LatestTableDataset(AbstractDataset[None, pd.DataFrame]):
    """The newest version of a versioned CSV or Parquet table another pipeline writes (e.g.
    evaluate_cv's summary), or an empty table when that pipeline has not run: lets the default
    run use the cross-validation evidence when it exists without making evaluate_cv part of
    every run (and evaluate_cv use the transfer pipeline's embeddings)."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def _latest(self) -> Path | None:
        if not self._filepath.is_dir():
            return None
        versions = sorted(p for p in self._filepath.iterdir()
                          if (p / self._filepath.name).is_file())
        return versions[-1] / self._filepath.name if versions else None

    def load(self) -> pd.DataFrame:
        path = self._latest()
        if path is None:
            return pd.DataFrame()
        try:
            return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as exc:
            raise DatasetError(f"{path}: cannot read this table ({exc})") from exc

    def save(self, data: None) -> None:
        raise DatasetError("LatestTableDataset is read-only: the pipeline that owns it writes it")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": "latest"}
