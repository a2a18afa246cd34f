"""Kedro datasets for audio collections, the per-track extraction cache and spectrogram stores.

Nodes never build file paths: these classes own the on-disk layouts and hand nodes plain Python
objects (tables, mappings, memory-mapped arrays).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, AbstractVersionedDataset, DatasetError
from kedro.io.core import Version
from kedro_datasets._typing import HTMLPreview, ImagePreview, TablePreview

from music_genre.audio import AUDIO_SUFFIXES
from music_genre.models.inputs import SpectrogramSet  # the in-memory form of SpectrogramDataset

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

    def preview(self, n_clips: int = 4, seconds: float = 5.0) -> HTMLPreview:
        """kedro-viz: tracks per genre and an audio player for the first seconds of one track of
        each of the first ``n_clips`` genres (small OGG clips inline). Never decodes more, and
        never generates the demo collection."""
        files = self._find_files()
        if not files:
            return HTMLPreview(f"<p>No audio under <code>{html.escape(str(self._root))}</code> "
                               "yet (the demo generates it on the first run).</p>")
        genres = pd.Series([p.parent.name for p in files]).value_counts().sort_index()
        rows = "".join(f"<tr><td>{html.escape(g)}</td><td>{n}</td></tr>"
                       for g, n in genres.items())
        players = []
        for genre in genres.index:
            if len(players) >= n_clips:
                break
            for path in (p for p in files if p.parent.name == genre):
                clip = _audio_clip_html(path, seconds)
                if clip:
                    players.append(clip)
                    break
        return HTMLPreview(
            f"<p>{len(files)} files in {len(genres)} genres under "
            f"<code>{html.escape(str(self._root))}</code></p>"
            f"<table><tr><th>genre</th><th>files</th></tr>{rows}</table>"
            f"<p>First {seconds:g} s of one track per genre:</p>" + "".join(players))


# members of a cache entry not kept in the per-process memo of TrackCache.fields
LARGE_MEMBERS = frozenset({"mel"})
# (path, size, mtime) -> small members; bounded (~10 kB an entry: 8192 entries ~80 MB)
_SMALL_MEMBERS: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_SMALL_MEMBERS_MAX = 8192


def _remember(memo_key: tuple, small: dict[str, np.ndarray]) -> None:
    _SMALL_MEMBERS[memo_key] = small
    while len(_SMALL_MEMBERS) > _SMALL_MEMBERS_MAX:
        _SMALL_MEMBERS.popitem(last=False)


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

    def fields(self, key: str, names: list[str]) -> dict[str, np.ndarray]:
        """The members ``names`` of entry ``key`` that it has (read-only arrays).

        The small members (everything but the 330 kB spectrogram, which is read only when asked
        for) are read once per process and entry version and shared: the three nodes that read
        the cache (the chain check, the feature table, the rich tables) open each ``.npz`` once
        instead of three times. An entry is never changed in place (a chain added later
        replaces the file, a new mtime), so the memo is keyed by path, size and mtime.
        """
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyError(key) from None
        memo_key = (str(path), st.st_size, st.st_mtime_ns)
        small = _SMALL_MEMBERS.get(memo_key)
        large = [n for n in names if n in LARGE_MEMBERS]
        if small is None or large:
            with np.load(path, allow_pickle=False) as npz:
                if small is None:
                    small = {n: npz[n] for n in npz.files if n not in LARGE_MEMBERS}
                    for arr in small.values():
                        arr.flags.writeable = False
                    _remember(memo_key, small)
                found = {n: npz[n] for n in large if n in npz.files}
        else:
            found = {}
        found.update({n: small[n] for n in names if n in small})
        return {n: found[n] for n in names if n in found}

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
    read before extraction, one written by it): Kedro pipelines must stay acyclic. A generator
    node may save it chunk by chunk (each save adds that chunk's entries).
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

    def preview(self, nrows: int = 10) -> TablePreview:
        """kedro-viz: how many entries, and the first ``nrows`` (status, reason, what is stored),
        read one ``.npz`` at a time."""
        entries = sorted(self._root.glob("*.npz")) if self._root.is_dir() else []
        rows = []
        for path in entries[:nrows]:
            with np.load(path, allow_pickle=False) as npz:
                row = {"key": path.stem[:12], "of": len(entries)}
                row["status"] = str(npz["status"]) if "status" in npz.files else ""
                row["reason"] = str(npz["reason"])[:80] if "reason" in npz.files else ""
                row["stored"] = ", ".join(f"{k} {tuple(npz[k].shape)}" for k in npz.files
                                          if k not in ("status", "reason"))
            rows.append(row)
        table = pd.DataFrame(rows, columns=["key", "of", "status", "reason", "stored"])
        return TablePreview(table.to_dict(orient="split"))


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
        ids = json.dumps([str(t) for t in data.track_ids])
        # a set read from content-addressed cache entries names its content: when the newest
        # saved version holds the same (a re-run over unchanged audio), this version links its
        # data file instead of writing 330 MB (1000 tracks) again
        content = getattr(data.data, "content_id", None)
        content = f"{content}:{self._dtype.str}:{hashlib.sha1(ids.encode()).hexdigest()}" \
            if content else None
        same = self._previous_with(content, folder) if content else None
        if same is not None:
            try:
                os.link(same / "data.npy", tmp / "data.npy")
            except OSError:  # no hard links here: copy
                shutil.copyfile(same / "data.npy", tmp / "data.npy")
        else:
            arr = np.lib.format.open_memmap(
                tmp / "data.npy", mode="w+", dtype=self._dtype, shape=data.data.shape
            )
            for i in range(0, len(data.data), 64):  # chunked copy: never a full copy in RAM
                arr[i : i + 64] = data.data[i : i + 64]
            arr.flush()
            del arr
        (tmp / "track_ids.json").write_text(ids)
        if content:
            (tmp / "content_id.txt").write_text(content)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    def _previous_with(self, content: str, folder: Path) -> Path | None:
        """The newest other saved version, when its recorded content is ``content``."""
        if self._version is None:  # unversioned: the one folder is rewritten, nothing to link
            return None
        root = Path(self._filepath)
        candidates = sorted((p for p in root.glob(f"*/{root.name}")
                             if p != folder and (p / "data.npy").is_file()), reverse=True)
        try:
            return candidates[0] if candidates and (
                candidates[0] / "content_id.txt").read_text() == content else None
        except OSError:  # a version saved before content ids were recorded
            return None

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / "data.npy").is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dtype": str(self._dtype),
                "version": self._version}

    def preview(self, n: int = 4) -> ImagePreview:
        """kedro-viz: ``n`` spectrograms spread over the set (memory-mapped: only those are
        read), as one PNG."""
        spectrograms = self.load()
        picks = np.unique(np.linspace(0, len(spectrograms) - 1, min(n, len(spectrograms)))
                          .round().astype(int)) if len(spectrograms) else []
        return ImagePreview(_spectrogram_png([spectrograms.track_ids[i] for i in picks],
                                             [np.asarray(spectrograms.data[i], np.float32)
                                              for i in picks]))


class OptionalCSVDataset(AbstractDataset[None, pd.DataFrame]):
    """A CSV a user may provide (e.g. a predefined split); an empty table when it is absent."""

    def __init__(self, *, filepath: str | None = None, load_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath) if filepath else None
        self._load_args = dict(load_args or {})
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        if self._filepath is None or not self._filepath.is_file():
            return pd.DataFrame()
        try:
            return pd.read_csv(self._filepath, **self._load_args)
        except Exception as exc:
            raise DatasetError(f"{self._filepath}: cannot read this CSV ({exc})") from exc

    def save(self, data: None) -> None:
        raise DatasetError("OptionalCSVDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def preview(self, nrows: int = 10) -> TablePreview:
        """kedro-viz: for a split table (a ``split`` column), the tracks per split (and per genre
        when there is a ``genre`` column); otherwise the first ``nrows`` rows. Empty when the
        file is absent (the table is optional)."""
        table = self.load()
        if "split" in table.columns:
            by = ["genre", "split"] if "genre" in table.columns else ["split"]
            counts = table.groupby(by).size()
            table = (counts.unstack("split", fill_value=0) if len(by) == 2
                     else counts.to_frame("tracks")).reset_index()
        return TablePreview(table.head(nrows).to_dict(orient="split"))


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

    def preview(self, nrows: int = 10) -> TablePreview:
        """kedro-viz: the first ``nrows`` rows of the newest version (empty before the first)."""
        return TablePreview(self.load().head(nrows).to_dict(orient="split"))


def _audio_clip_html(path: Path, seconds: float) -> str | None:
    """An ``<audio>`` player with the first ``seconds`` of ``path`` as inline OGG, or None when
    the file does not decode."""
    import base64
    import io

    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            y = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True)
            rate = f.samplerate
        buffer = io.BytesIO()
        sf.write(buffer, y.mean(axis=1), rate, format="OGG", subtype="VORBIS")
    except Exception:
        return None
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f"<div><p>{html.escape(path.parent.name)}: {html.escape(path.name)}</p>"
            f'<audio controls preload="none" src="data:audio/ogg;base64,{data}"></audio></div>')


def _spectrogram_png(titles: list[str], spectrograms: list[np.ndarray]) -> str:
    """Base64 PNG of spectrograms side by side (low frequencies at the bottom)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(spectrograms), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3), squeeze=False)
    for ax, title, mel in zip(axes[0], titles, spectrograms):
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        ax.set_title(str(title), fontsize=9)
        ax.set_xlabel("frame")
    axes[0][0].set_ylabel("mel band")
    if not spectrograms:
        axes[0][0].text(0.5, 0.5, "empty set", ha="center", va="center")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
