"""Data processing: raw GTZAN audio → manifest, features, spectrograms, split.

Each node takes tables or mappings from the catalog and returns new ones; decoding goes through
:mod:`music_genre.audio`, the module the prediction service uses too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
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


#: keep rule's format preference among files with the same track id: lossless first
FORMAT_PREFERENCE = [".wav", ".flac", ".aiff", ".aif", ".au", ".snd", ".ogg", ".mp3"]


def _keep_order(rec: dict[str, Any]) -> tuple:
    """Sort key of the duplicate keep rule (smallest is kept): first a file whose folder is the
    genre its id names (``rock/rock.00002.wav`` before ``metal/rock.00002.wav``), then the
    lossless format (:data:`FORMAT_PREFERENCE`), then the path, alphabetically."""
    track_id, genre, path = str(rec["track_id"]), str(rec["genre"]), str(rec["path"])
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    rank = FORMAT_PREFERENCE.index(suffix) if suffix in FORMAT_PREFERENCE else len(
        FORMAT_PREFERENCE)
    return (track_id.split(".", 1)[0] != genre, rank, path)


def exclude_duplicate_ids(manifest: pd.DataFrame) -> pd.DataFrame:
    """One usable file per track id: the same id in two files (any format, any genre folder)
    keeps the first by :func:`_keep_order`; the others are excluded with the reason (they appear
    in the dataset's one exclusion warning). Without this, one id could be in two rows, in two
    parts of the split, and the feature and label tables of a model would disagree."""
    ok = manifest[manifest["status"] == "ok"]
    return _keep_one_of_each(
        manifest, ok["track_id"].astype(str),
        lambda rec, kept: f"{rec['path']}: duplicate of track id '{rec['track_id']}', kept "
        f"{kept['path']} (rule: the file in the genre folder its id names, then WAV/FLAC before "
        "lossy formats, then the path); delete or rename one of them")


def _keep_one_of_each(manifest: pd.DataFrame, keys: pd.Series, reason) -> pd.DataFrame:
    """Of the usable rows sharing a key (``keys``, indexed like them), keep the first by
    :func:`_keep_order`; exclude the others with ``reason(row, kept_row)``."""
    manifest = manifest.copy()
    ok = manifest.loc[keys.index]
    for _, group in ok.groupby(keys, sort=True):
        if len(group) < 2:
            continue
        records = sorted(group.reset_index().to_dict("records"), key=_keep_order)
        for rec in records[1:]:
            manifest.loc[rec["index"], ["status", "reason"]] = ["excluded",
                                                                reason(rec, records[0])]
    return manifest


def probe_tracks(raw_audio: pd.DataFrame, genres: list[str]) -> pd.DataFrame:
    """Read every file's header: format, rate, channels, duration, and whether it is usable.
    The same track id in two files keeps one (:func:`exclude_duplicate_ids`)."""
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
    return exclude_duplicate_ids(pd.DataFrame(rows, columns=MANIFEST_COLUMNS))


def _cache_key(path: str, params: audio.ExtractionParams, segment_s: float) -> str:
    """Hash of the audio bytes, the extraction parameters, the rich-feature segment length and
    the package version: unchanged audio under unchanged parameters is never analysed twice."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(_key_inputs(params, segment_s))
    return digest.hexdigest()[:20]


def _key_inputs(params: audio.ExtractionParams, segment_s: float) -> bytes:
    """Everything a cache key hashes besides the audio bytes."""
    return (json.dumps(params.as_dict(), sort_keys=True)
            + json.dumps({"rich_segment_s": segment_s}) + __version__).encode()


# what a cache key depends on besides the bytes: a remembered key is reused only under these
KEY_MEMO_COLUMNS = ["path", "size", "mtime_ns", "key_params", "cache_key"]


def _cache_keys(paths, params: audio.ExtractionParams, segment_s: float,
                memo: pd.DataFrame | None, rehash: bool) -> pd.DataFrame:
    """The cache key of every path, with what it was computed under (``KEY_MEMO_COLUMNS``).

    A file whose path, size and modification time (ns) are those of a row of ``memo`` (the last
    run's table) under the same parameters keeps that row's key without its bytes being read
    again (at 1000 GTZAN tracks: 1.3 GB not re-hashed per re-run), as make and rsync trust them;
    ``rehash`` (``execution.rehash_audio``) hashes every file regardless.
    """
    signature = hashlib.sha1(_key_inputs(params, segment_s)).hexdigest()[:20]
    known: dict[tuple, str] = {}
    if memo is not None and len(memo) and set(KEY_MEMO_COLUMNS) <= set(memo.columns) \
            and not rehash:
        rows = memo[memo["key_params"].astype(str) == signature]
        known = {(str(p), str(s), str(m)): str(k) for p, s, m, k in
                 zip(rows["path"], rows["size"], rows["mtime_ns"], rows["cache_key"])}
    out = []
    for path in paths:
        st = os.stat(path)
        size, mtime = str(st.st_size), str(st.st_mtime_ns)
        key = known.get((str(path), size, mtime)) or _cache_key(path, params, segment_s)
        out.append((str(path), size, mtime, signature, key))
    return pd.DataFrame(out, columns=KEY_MEMO_COLUMNS)


def _segment_s(rich: dict[str, Any] | None) -> float:
    return float((rich or {}).get("segment_s", 3.0) or 0.0)


def _chains(augmentation: dict[str, Any] | None) -> list[str]:
    kinds = list(dict.fromkeys(evaluation.name_list((augmentation or {}).get("degradations"))))
    evaluation.check_chains(kinds, "params:augmentation.degradations")
    return kinds


def _start_workers(n_jobs: int) -> None:
    """Start joblib's (reusable) worker processes and their imports that compile nothing
    (:func:`music_genre.audio.worker_imports`); the extraction's ``Parallel`` then finds them
    running."""
    from joblib import effective_n_jobs

    Parallel(n_jobs=n_jobs)(delayed(audio.worker_imports)()
                            for _ in range(effective_n_jobs(n_jobs)))


# (path, previous entry or None) → cache entry; defined in music_genre.audio so that joblib/Dask
# workers import librosa only, not pandas and Kedro (~1 s of start-up per worker process)
_entry_job = audio.track_entry_job


def extract_tracks(
    probed: pd.DataFrame,
    previous_cache: TrackCache,
    extraction: dict[str, Any],
    rich: dict[str, Any],
    augmentation: dict[str, Any],
    execution: dict[str, Any],
    key_memo: pd.DataFrame | None = None,
) -> Iterator[tuple[dict[str, dict[str, Any]], pd.DataFrame]]:
    """Analyse every usable track not already in the cache, in ONE pass per track, in parallel.

    One worker call per track decodes it once and computes from one STFT the 57 features, the
    spectrogram and the rich features, plus the rich features of each degraded copy listed in
    ``augmentation.degradations`` (``audio.track_entry``); one cache entry per track holds them
    all. An entry that lacks a chain added since gets just that chain computed.

    A generator node: it yields ``(new cache entries, track keys)`` every
    ``execution.cache_write_every`` tracks, and Kedro saves each chunk as it comes, so new
    entries never pile up in memory. The key hashes the audio bytes and the parameters; a file
    unchanged since the last run (``key_memo``: same path, size and mtime) keeps its key unread.
    ``track_keys`` also carries what each key was computed under (``KEY_MEMO_COLUMNS``; saved
    as the next run's memo by :func:`remember_keys`).
    """
    params = audio.ExtractionParams.from_dict(extraction)
    segment_s, chains = _segment_s(rich), tuple(_chains(augmentation))
    usable = probed[probed["status"] == "ok"]
    paths = usable["path"].astype(str).to_numpy()
    computed = _cache_keys(paths, params, segment_s, key_memo,
                           bool(execution.get("rehash_audio", False)))
    keys = computed["cache_key"].tolist()
    track_keys = computed.assign(track_id=usable["track_id"].astype(str).to_numpy())[
        ["track_id", *KEY_MEMO_COLUMNS]]
    todo, seen = [], set()  # (key, path, previous entry lacks chains)
    for key, path in zip(keys, paths):
        if key in seen:  # two files with the same bytes: one analysis
            continue
        seen.add(key)
        if key not in previous_cache:
            todo.append((key, path, False))
        elif chains:
            got = previous_cache.fields(key, ["status", "degraded_chains"])
            if str(got["status"]) == "ok" and not set(chains) <= set(
                    map(str, got.get("degraded_chains", ()))):
                todo.append((key, path, True))
    logger.info("Extraction: %d usable tracks, %d cached, %d to analyse (%d for new "
                "degradation chains only)", len(paths), len(paths) - len(todo), len(todo),
                sum(partial for *_, partial in todo))

    n_jobs = int(execution.get("n_jobs", -1))
    on_dask = distributed.scheduler_of(execution) == "dask"
    parallel = len(todo) >= int(execution.get("min_tracks_for_parallel", 8)) and n_jobs != 1
    starter = None
    if todo and parallel and not on_dask:
        # the joblib workers start (a Python process each, numpy/scipy/numba imports: ~1 CPU-s)
        # while this process warms librosa's numba code up below; they load that code only
        # when the first track reaches them, after the warm-up
        starter = threading.Thread(target=_start_workers, args=(n_jobs,), daemon=True)
        starter.start()
    if todo and (parallel or on_dask):
        # fill the numba cache before workers start (no compile race); skipped while the
        # marker says this installation filled it already
        audio.warm_up_once(params)
    if starter is not None:
        starter.join()
    kwargs = {"params": params, "segment_s": segment_s, "chains": chains}
    # previous entries are read lazily, as each job is handed to a worker
    jobs = ((p, previous_cache[k] if partial else None) for k, p, partial in todo)
    if on_dask and todo:
        # a Dask cluster (execution.dask.address, or a LocalCluster): see music_genre.distributed
        results = distributed.map_on_dask(_entry_job, jobs, execution.get("dask"), **kwargs)
    elif parallel:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_entry_job)(job, **kwargs) for job in jobs)
    else:
        results = (_entry_job(job, **kwargs) for job in jobs)
    every = max(1, int(execution.get("cache_write_every", 32)))
    progress = tqdm(total=len(todo), desc="extract (one pass per track)", unit="track",
                    disable=not execution.get("progress", True) or not todo)
    chunk: dict[str, dict[str, Any]] = {}
    for (key, *_), entry in zip(todo, results):
        chunk[key] = entry
        progress.update()
        if len(chunk) >= every:
            yield chunk, track_keys
            chunk = {}
    progress.close()
    yield chunk, track_keys  # the last chunk (maybe empty: every track was cached)


def remember_keys(track_keys: pd.DataFrame) -> pd.DataFrame:
    """The table the next run's :func:`extract_tracks` reads as its key memo."""
    return track_keys[KEY_MEMO_COLUMNS]


def assemble_dataset(
    probed: pd.DataFrame, track_keys: pd.DataFrame, cache: TrackCache, extraction: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, SpectrogramSet]:
    """Join the cache into the manifest, the feature table and the spectrogram set.

    Tracks that failed to decode are excluded here with their reason, in one warning.
    """
    params = audio.ExtractionParams.from_dict(extraction)
    manifest = exclude_duplicate_ids(probed)  # a manifest probed before duplicates were checked
    key_of = dict(zip(track_keys["track_id"].astype(str), track_keys["cache_key"].astype(str)))
    manifest = _exclude_identical_audio(manifest, key_of)
    feature_rows, spectrogram_keys, ids = [], [], []
    mel_shape = (params.n_mels, params.n_frames)  # every entry's spectrogram has this shape
    for i, rec in manifest.iterrows():
        if rec["status"] != "ok":
            continue
        entry = cache.fields(key_of[str(rec["track_id"])], ["status", "reason", "features"])
        if str(entry["status"]) != "ok":
            manifest.loc[i, ["status", "reason"]] = ["excluded", str(entry["reason"])]
            continue
        feature_rows.append(entry["features"])
        spectrogram_keys.append(key_of[str(rec["track_id"])])
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


def _exclude_identical_audio(manifest: pd.DataFrame, key_of: dict[str, str]) -> pd.DataFrame:
    """The same audio bytes under two track ids (the cache key hashes the bytes): keep one by
    :func:`_keep_order`'s rule on the ids, exclude the others with the reason."""
    ok = manifest[manifest["status"] == "ok"]
    return _keep_one_of_each(
        manifest, ok["track_id"].astype(str).map(key_of),
        lambda rec, kept: f"{rec['path']}: the same audio as {kept['path']} (track "
        f"'{kept['track_id']}', kept by the duplicate rule); one recording under two ids would "
        "be in training and test at once: delete the copy")


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

    @property
    def content_id(self) -> str:
        """The entries' keys in order (each hashes its audio and parameters): equal ids, equal
        spectrograms (``SpectrogramDataset.save`` then links the previous version's file)."""
        return hashlib.sha1("\n".join([*self._keys, str(self.shape)]).encode()).hexdigest()

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return self._mel(self._keys[item])
        keys = self._keys[item] if isinstance(item, slice) else [self._keys[i] for i in item]
        out = np.empty((len(keys), *self.shape[1:]), self.dtype)
        for j, key in enumerate(keys):
            out[j] = self._mel(key)
        return out

    def _mel(self, key: str) -> np.ndarray:
        mel = self._cache.fields(key, ["mel"])["mel"]
        if mel.shape != self.shape[1:]:
            raise ValueError(f"track cache entry {key}: spectrogram {mel.shape}, expected "
                             f"{self.shape[1:]} from params:extraction; delete the entry")
        return mel.astype(self.dtype, copy=False)

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
    user's CSV; :func:`music_genre.splits.make_split`). One row per track id whatever the
    manifest holds: an id is never in two parts."""
    ok = manifest[manifest["status"] == "ok"][["track_id", "genre"]].reset_index(drop=True)
    ok["track_id"] = ok["track_id"].astype(str)
    duplicated = ok["track_id"].duplicated()
    if duplicated.any():
        logger.warning("Split: %d duplicate track id row(s) dropped (%s); each id is split once",
                       int(duplicated.sum()), sorted(set(ok.loc[duplicated, "track_id"]))[:10])
        ok = ok[~duplicated].reset_index(drop=True)
    return splits.make_split(ok, predefined, filtered_lists, split)


def assemble_rich_tables(
    manifest: pd.DataFrame,
    track_keys: pd.DataFrame,
    cache: TrackCache,
    extraction: dict[str, Any],
    rich: dict[str, Any],
    augmentation: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rich feature table and the degraded-copies table of every usable track, read from
    the cache entries ``extract_tracks`` wrote (no audio is decoded here).

    * ``rich_features``: ``track_id``, ``genre``, then :func:`music_genre.audio.rich_feature_names`
      (the 57 + variances, deltas, contrast, tonnetz, segment statistics); its first 57 columns
      equal the ``features`` table bit for bit (one implementation);
    * ``degraded_features``: the same after each real-world chain listed in
      ``augmentation.degradations`` (``audio.degrade``: resampled through 16 or 8 kHz, MP3, or
      chains such as ``mp3>resample_8k``), as users' recordings arrive, one long table with a
      ``degradation`` column (empty when no chain is listed). Models add the rows of their
      *training* tracks to their training set (``<model>.augment``) or read one chain instead of
      the original (``<model>.input_degradation``); ``evaluate_cv`` also scores test folds on
      them (robustness).
    """
    params = audio.ExtractionParams.from_dict(extraction)
    segment_s, chains = _segment_s(rich), _chains(augmentation)
    names = audio.rich_feature_names(params, segment_s)
    key_of = dict(zip(track_keys["track_id"].astype(str), track_keys["cache_key"].astype(str)))
    ok = manifest[manifest["status"] == "ok"]
    full_rows, full_ids, full_genres = [], [], []
    low = {chain: ([], [], []) for chain in chains}
    for tid, genre in zip(ok["track_id"].astype(str), ok["genre"].astype(str)):
        entry = cache.fields(key_of[tid], ["status", "reason", "rich", "degraded_chains",
                                           "degraded", "degraded_errors"])
        if str(entry["status"]) != "ok":  # assemble_dataset has excluded it already
            continue
        full_rows.append(entry["rich"])
        full_ids.append(tid)
        full_genres.append(genre)
        have = [str(c) for c in entry.get("degraded_chains", ())]
        for chain in chains:
            i = have.index(chain)
            if str(entry["degraded_errors"][i]):
                logger.warning("degraded features: %s left out (%s)", tid,
                               str(entry["degraded_errors"][i]))
                continue
            rows, ids, genres = low[chain]
            rows.append(entry["degraded"][i])
            ids.append(tid)
            genres.append(genre)

    def table(rows, ids, genres, **extra) -> pd.DataFrame:
        out = pd.DataFrame(np.vstack(rows) if rows else np.zeros((0, len(names))), columns=names)
        for i, (name, value) in enumerate({"track_id": ids, "genre": genres, **extra}.items()):
            out.insert(i, name, value)
        return out

    rich_table = table(full_rows, full_ids, full_genres)
    columns = ["track_id", "genre", "degradation", *names]
    frames = [table(*low[c], degradation=[c] * len(low[c][0])) for c in chains]
    degraded = (pd.concat(frames, ignore_index=True)[columns] if frames
                else pd.DataFrame(columns=columns))
    return rich_table, degraded
