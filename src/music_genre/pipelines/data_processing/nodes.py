"""Data processing: raw GTZAN audio → manifest, features, spectrograms, split.

Each node takes tables or mappings from the catalog and returns new ones; decoding goes through
:mod:`music_genre.audio`, the module the prediction service uses too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from music_genre import __version__, audio, distributed, evaluation, splits
from music_genre.datasets import SpectrogramSet, TrackCache

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["track_id", "genre", "path", "format", "sample_rate", "channels",
                    "duration_s", "status", "reason"]


def probe_tracks(raw_audio: pd.DataFrame, genres: list[str]) -> pd.DataFrame:
    """Read every file's header: format, rate, channels, duration, and whether it is usable."""
    rows = []
    for rec in raw_audio.to_dict("records"):
        row = {"track_id": rec["track_id"], "genre": rec["genre"], "path": rec["path"],
               "format": None, "sample_rate": None, "channels": None, "duration_s": None,
               "status": "ok", "reason": ""}
        if rec["genre"] not in genres:
            row.update(status="excluded", reason=f"{rec['path']}: folder '{rec['genre']}' is "
                       "not one of the genres in params:genres")
        else:
            try:
                info = audio.probe(rec["path"])
                row.update(format=info.format, sample_rate=info.sample_rate,
                           channels=info.channels, duration_s=round(info.duration_s, 3))
            except audio.AudioError as exc:
                row.update(status="excluded", reason=str(exc))
        rows.append(row)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _cache_key(path: str, params: audio.ExtractionParams) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(params.as_dict(), sort_keys=True).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()[:20]


# one track → its cache entry (status, reason, features, float16 spectrogram); defined in
# music_genre.audio so that joblib/Dask workers import librosa only, not pandas and Kedro
_analyse_one = audio._cache_entry


def extract_tracks(
    probed: pd.DataFrame,
    previous_cache: TrackCache,
    extraction: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """Analyse every usable track not already in the cache (features + spectrogram), in parallel.

    Returns the new cache entries and each track's cache key. The key hashes the audio bytes and
    the extraction parameters: unchanged audio is never analysed twice, a parameter change
    recomputes everything.
    """
    params = audio.ExtractionParams.from_dict(extraction)
    usable = probed[probed["status"] == "ok"]
    paths = usable["path"].astype(str).to_numpy()
    keys = [_cache_key(p, params) for p in paths]
    todo = [(k, p) for k, p in zip(keys, paths) if k not in previous_cache]
    logger.info("Extraction: %d usable tracks, %d cached, %d to analyse",
                len(paths), len(paths) - len(todo), len(todo))

    n_jobs = int(execution.get("n_jobs", -1))
    progress = tqdm(total=len(todo), desc="extract features+spectrograms", unit="track",
                    disable=not execution.get("progress", True) or not todo)
    new_entries: dict[str, dict[str, Any]] = {}
    if todo and (len(todo) >= int(execution.get("min_tracks_for_parallel", 8)) and n_jobs != 1
                 or distributed.scheduler_of(execution) == "dask"):
        audio.warm_up(params)  # fill the numba cache before workers start (no compile race)
    if distributed.scheduler_of(execution) == "dask" and todo:
        # a Dask cluster (execution.dask.address, or a LocalCluster): see music_genre.distributed
        results = distributed.map_on_dask(_analyse_one, [p for _, p in todo],
                                          execution.get("dask"), params=params)
    elif len(todo) >= int(execution.get("min_tracks_for_parallel", 8)) and n_jobs != 1:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_analyse_one)(p, params) for _, p in todo
        )
    else:
        results = (_analyse_one(p, params) for _, p in todo)
    for (key, _), entry in zip(todo, results):
        new_entries[key] = entry
        progress.update()
    progress.close()
    return new_entries, pd.DataFrame({"track_id": usable["track_id"].to_numpy(), "cache_key": keys})


def assemble_dataset(
    probed: pd.DataFrame, track_keys: pd.DataFrame, cache: TrackCache, extraction: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, SpectrogramSet]:
    """Join the cache into the manifest, the feature table and the spectrogram set.

    Tracks that failed to decode are excluded here with their reason, in one warning.
    """
    params = audio.ExtractionParams.from_dict(extraction)
    manifest = probed.copy()
    key_of = dict(zip(track_keys["track_id"].astype(str), track_keys["cache_key"].astype(str)))
    feature_rows, spectrogram_keys, ids = [], [], []
    mel_shape = (params.n_mels, params.n_frames)
    for i, rec in manifest.iterrows():
        if rec["status"] != "ok":
            continue
        entry = cache[key_of[str(rec["track_id"])]]
        if str(entry["status"]) != "ok":
            manifest.loc[i, ["status", "reason"]] = ["excluded", str(entry["reason"])]
            continue
        feature_rows.append(entry["features"])
        spectrogram_keys.append(key_of[str(rec["track_id"])])
        mel_shape = entry["mel"].shape
        ids.append(str(rec["track_id"]))

    excluded = manifest[manifest["status"] != "ok"]
    if len(excluded):
        listing = "\n".join(f"  - {r.reason}" for r in excluded.itertuples())
        logger.warning("%d file(s) excluded from the dataset:\n%s", len(excluded), listing)
    ok = manifest[manifest["status"] == "ok"]
    counts = ok["genre"].value_counts().to_dict()
    logger.info("Manifest: %d usable tracks (%s)", len(ok), counts)
    if not len(ok):
        raise ValueError("No usable audio tracks: every file was excluded (see the warning above)")

    features = pd.DataFrame(np.vstack(feature_rows), columns=audio.FEATURE_NAMES)
    features.insert(0, "genre", ok["genre"].astype(str).to_numpy())
    features.insert(0, "track_id", ids)
    # read from the cache a chunk at a time while the store is written: 1000 tracks never sit
    # in RAM at once (they are 330 MB in float16)
    data = _CachedSpectrograms(cache, spectrogram_keys, mel_shape)
    return manifest, features, SpectrogramSet(np.array(ids), data)


class _CachedSpectrograms:
    """The spectrograms of cache entries ``keys`` as a read-on-demand (n, n_mels, n_frames) array.

    Enough of the ndarray interface for ``SpectrogramDataset.save`` (shape, dtype, ``len``,
    slices); anything else (``np.asarray``, ``.max()``, a deep copy into a MemoryDataset)
    materialises the whole array.
    """

    def __init__(self, cache: TrackCache, keys: list[str], mel_shape: tuple[int, int]):
        self._cache, self._keys = cache, list(keys)
        self.shape = (len(self._keys), *mel_shape)
        self.dtype = np.dtype(np.float16)
        self.ndim = 3

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return self._cache[self._keys[item]]["mel"].astype(self.dtype, copy=False)
        keys = self._keys[item] if isinstance(item, slice) else [self._keys[i] for i in item]
        out = np.empty((len(keys), *self.shape[1:]), self.dtype)
        for j, key in enumerate(keys):
            out[j] = self._cache[key]["mel"]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getattr__(self, name: str):
        if name.startswith("_") and name not in ("__deepcopy__", "__copy__"):
            raise AttributeError(name)
        return getattr(self[:], name)


def split_tracks(
    manifest: pd.DataFrame, predefined: pd.DataFrame, filtered_lists: pd.DataFrame,
    split: dict[str, Any]
) -> pd.DataFrame:
    """Track-level train/validation/test split of the usable tracks (``params:split.scheme``:
    the fault-filtered GTZAN lists on full GTZAN, else random stratified and seeded, or a
    user's CSV; :func:`music_genre.splits.make_split`)."""
    ok = manifest[manifest["status"] == "ok"][["track_id", "genre"]]
    return splits.make_split(ok, predefined, filtered_lists, split)


def _rich_one(path: str, params: audio.ExtractionParams, segment_s: float,
              degradation: str = "full") -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    try:
        y = audio.fix_length(audio.load_audio(path, sr=params.sample_rate), params.n_samples)
        with threadpool_limits(1):  # one BLAS thread: bit-identical wherever it runs (service)
            y = audio.degrade(y, params.sample_rate, degradation)
            rich = audio.rich_features(y, params, segment_s)
        return {"status": np.array("ok"), "rich": rich}
    except Exception as exc:  # assemble_dataset already reported undecodable files
        return {"status": np.array("excluded"), "reason": np.array(f"{path}: {exc!r}")}


def _rich_tables(manifest: pd.DataFrame, previous_cache: TrackCache, extraction: dict[str, Any],
                 rich: dict[str, Any], execution: dict[str, Any], degradations: list[str],
                 what: str) -> tuple[dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """Rich features of every usable track as it is (``full``) or after each real-world chain in
    ``degradations``, cached per track and chain. Returns the new cache entries and one table
    (``track_id``, ``genre``, feature columns) per chain."""
    params = audio.ExtractionParams.from_dict(extraction)
    segment_s = float(rich.get("segment_s", 3.0) or 0.0)
    ok = manifest[manifest["status"] == "ok"]
    paths = ok["path"].astype(str).to_numpy()
    base_tag = {"rich": rich, "version": __version__}
    audio_keys = [_cache_key(p, params) for p in paths]  # each file read and hashed once
    jobs = []  # (chain, key, path) for every track of every chain
    for kind in degradations:
        tag = json.dumps(base_tag if kind == "full" else {**base_tag, "degradation": kind},
                         sort_keys=True)
        jobs += [(kind, hashlib.sha1((key + tag).encode()).hexdigest()[:20], p)
                 for key, p in zip(audio_keys, paths)]
    todo = [(kind, k, p) for kind, k, p in jobs if k not in previous_cache]
    logger.info("%s: %d track analyses, %d cached, %d to compute", what, len(jobs),
                len(jobs) - len(todo), len(todo))
    n_jobs = int(execution.get("n_jobs", -1))
    progress = tqdm(total=len(todo), desc=what, unit="track",
                    disable=not execution.get("progress", True) or not todo)
    if len(todo) >= int(execution.get("min_tracks_for_parallel", 8)) and n_jobs != 1:
        audio.warm_up(params)  # fill the numba cache before workers start (no compile race)
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_rich_one)(p, params, segment_s, kind) for kind, _, p in todo)
    else:
        results = (_rich_one(p, params, segment_s, kind) for kind, _, p in todo)
    new_entries = {}
    for (_, key, _), result in zip(todo, results):
        new_entries[key] = result
        progress.update()
    progress.close()
    names = audio.rich_feature_names(params, segment_s)
    tables = {}
    for i, kind in enumerate(degradations):
        rows, ids, genres = [], [], []
        chain = jobs[i * len(paths) : (i + 1) * len(paths)]
        for (_, key, _), tid, genre in zip(chain, ok["track_id"].astype(str),
                                           ok["genre"].astype(str)):
            entry = new_entries[key] if key in new_entries else previous_cache[key]
            if str(entry["status"]) != "ok":
                logger.warning("%s: %s left out (%s)", what, tid, str(entry["reason"]))
                continue
            rows.append(entry["rich"])
            ids.append(tid)
            genres.append(genre)
        table = pd.DataFrame(np.vstack(rows) if rows else np.zeros((0, len(names))),
                             columns=names)
        table.insert(0, "genre", genres)
        table.insert(0, "track_id", ids)
        tables[kind] = table
    return new_entries, tables


def extract_rich_features(
    manifest: pd.DataFrame,
    previous_cache: TrackCache,
    extraction: dict[str, Any],
    rich: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """The rich feature table (``audio.rich_features``: the 57 + variances, deltas, contrast,
    tonnetz, segment statistics) of every usable track, cached per track like the extraction.

    Returns the new cache entries and the table (``track_id``, ``genre``, feature columns).
    """
    new_entries, tables = _rich_tables(manifest, previous_cache, extraction, rich, execution,
                                       ["full"], "rich features")
    return new_entries, tables["full"]


def extract_degraded_features(
    manifest: pd.DataFrame,
    previous_cache: TrackCache,
    extraction: dict[str, Any],
    rich: dict[str, Any],
    augmentation: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """The rich features of every usable track after each real-world chain listed in
    ``augmentation.degradations`` (``audio.degrade``: resampled through 16 or 8 kHz, MP3, or
    chains such as ``mp3>resample_8k``), as users' recordings arrive. Models add the rows of
    their *training* tracks to their training set (``<model>.augment``) or read one chain
    instead of the original (``<model>.input_degradation``); ``evaluate_cv`` also scores test
    folds on them (robustness).

    Returns the new cache entries and one long table: ``track_id``, ``genre``, ``degradation``,
    then the rich feature columns (empty when no chain is listed).
    """
    kinds = list(dict.fromkeys(evaluation.name_list(augmentation.get("degradations"))))
    evaluation.check_chains(kinds, "params:augmentation.degradations")
    new_entries, tables = _rich_tables(manifest, previous_cache, extraction, rich, execution,
                                       kinds, "degraded features")
    params = audio.ExtractionParams.from_dict(extraction)
    names = audio.rich_feature_names(params, float(rich.get("segment_s", 3.0) or 0.0))
    frames = [t.assign(degradation=kind) for kind, t in tables.items()]
    columns = ["track_id", "genre", "degradation", *names]
    table = (pd.concat(frames, ignore_index=True)[columns] if frames
             else pd.DataFrame(columns=columns))
    return new_entries, table
