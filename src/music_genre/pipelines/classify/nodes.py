"""Classify a user's own music: every audio file under the given folders, with a trained model.

Each file goes through :func:`music_genre.inference.predict_bytes`, the prediction service's own
function (same decoding, same windows, same model input), in worker processes that each hold one
copy of the model; a file the decoder cannot read is listed with the reason and never stops the
others. A file already in the previous table with the same size, modification time, model and
model version is taken from there instead of being analysed again.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from music_genre import audio, inference

logger = logging.getLogger(__name__)

TOP_K = 3
#: columns of the result table, in order
COLUMNS = ["path", "status", "genre", "probability", "genre_2", "probability_2", "genre_3",
           "probability_3", "duration_s", "analysed_s", "band_limit_hz", "n_windows", "model",
           "model_version",
           "size_bytes", "mtime_ns", "error"]
#: what makes a previous row still valid: same file (size, time) and same trained model
RESUME_KEY = ["path", "size_bytes", "mtime_ns", "model", "model_version"]


def _inputs(classify: Mapping[str, Any]) -> list[Path]:
    raw = classify.get("input")
    if raw in (None, "", []):
        raise ValueError("params:classify.input is not set: name a file or folder, e.g. "
                         "kedro run --pipeline classify --params \"classify.input=~/Music\"")
    items = [raw] if isinstance(raw, (str, os.PathLike)) else list(raw)
    return [Path(os.path.expanduser(str(p))).resolve() for p in items]


def find_audio_files(classify: Mapping[str, Any]) -> pd.DataFrame:
    """Every audio file (by suffix) under ``classify.input``, recursively, in path order, with its
    size and modification time (what a resumed run compares)."""
    suffixes = {s.lower() for s in (classify.get("suffixes") or audio.AUDIO_SUFFIXES)}
    found: dict[str, os.stat_result] = {}
    for root in _inputs(classify):
        if root.is_file():
            found[str(root)] = root.stat()
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"params:classify.input: {root} does not exist; name a "
                                    "file or a folder of audio files")
        for folder, dirs, files in os.walk(root, onerror=_log_walk_error):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                if path.suffix.lower() in suffixes and not name.startswith("."):
                    try:
                        found[str(path)] = path.stat()
                    except OSError as exc:
                        logger.info("Skipping %s: %s", path, exc)
    logger.info("classify: %d audio files under %s", len(found),
                ", ".join(str(p) for p in _inputs(classify)))
    return pd.DataFrame({
        "path": list(found),
        "size_bytes": [s.st_size for s in found.values()],
        "mtime_ns": [s.st_mtime_ns for s in found.values()],
    }, columns=["path", "size_bytes", "mtime_ns"])


def _flag(value) -> bool:
    """A yes/no parameter, also when it arrives as text (``--params "classify.playlists=false"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _log_walk_error(exc: OSError) -> None:
    logger.info("Skipping %s: %s", exc.filename, exc.strerror)


# --- the per-file work (runs in worker processes) ------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(loaded: inference.LoadedModel, max_bytes: int,
                 max_analysed_s: float | None) -> None:
    inference.pin_blas_threads()
    # the service's bound: only the first max_analysed_s of a file is decoded (memory O(window))
    policy = inference.InputPolicy(max_analysed_s=max_analysed_s) if max_analysed_s else None
    _WORKER.update(loaded=loaded, max_bytes=max_bytes, policy=policy)


def _classify_one(path: str) -> dict[str, Any]:
    """One file's row; never raises (an unreadable file is a row with ``status: unreadable``)."""
    loaded: inference.LoadedModel = _WORKER["loaded"]
    row: dict[str, Any] = {"path": path, "model": loaded.name, "model_version": loaded.version}
    try:
        size = os.path.getsize(path)
        if size > _WORKER["max_bytes"]:
            raise inference.InputError(
                f"{path}: {size / 2**20:.0f} MB is over params:classify.max_file_mb "
                f"({_WORKER['max_bytes'] / 2**20:g} MB)")
        with open(path, "rb") as f:
            data = f.read()
        # the input the model's bundle describes (its extraction, columns, chain, networks)
        pred = inference.predict_bytes(data, loaded, path, _WORKER["policy"])
    except (audio.AudioError, inference.InputError, OSError) as exc:
        return {**row, "status": "unreadable", "error": str(exc)}
    except Exception as exc:  # a decoder crash on one file must not cost the others
        return {**row, "status": "unreadable", "error": f"{path}: {exc!r}"}
    ranked = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:TOP_K]
    row.update(status="ok", duration_s=round(pred.duration_s, 3),
               analysed_s=round(pred.analysed_s, 3), n_windows=pred.n_windows, error="",
               band_limit_hz=(round(pred.band_limit_hz) if pred.band_limit_hz else None))
    for i, (genre, p) in enumerate(ranked, start=1):
        suffix = "" if i == 1 else f"_{i}"
        row[f"genre{suffix}"] = genre
        row[f"probability{suffix}"] = round(p, 4)
    return row


def _run_all(paths: Sequence[str], loaded: inference.LoadedModel, max_bytes: int, n_jobs: int,
             progress: bool, max_analysed_s: float | None = None) -> list[dict]:
    bar = tqdm(total=len(paths), desc=f"classify ({loaded.name})", unit="file",
               disable=not progress or not paths)
    rows: list[dict] = [None] * len(paths)  # type: ignore[list-item]
    try:
        if n_jobs <= 1:
            _init_worker(loaded, max_bytes, max_analysed_s)
            for i, path in enumerate(paths):
                rows[i] = _classify_one(path)
                bar.update()
            return rows
        audio.warm_up_once(loaded.extraction)  # numba cache before workers
        # spawn, not fork: the parent may hold TensorFlow's threads, which fork can deadlock
        with cf.ProcessPoolExecutor(
                max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(loaded, max_bytes, max_analysed_s)) as pool:
            futures = {pool.submit(_classify_one, p): i for i, p in enumerate(paths)}
            for future in cf.as_completed(futures):
                rows[futures[future]] = future.result()
                bar.update()
        return rows
    finally:
        bar.close()


def _n_jobs(classify: Mapping[str, Any], n_todo: int) -> int:
    n_jobs = int(classify.get("n_jobs", -1))
    if n_jobs < 0:
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    if n_todo < int(classify.get("min_files_for_parallel", 8)):
        return 1
    return max(1, min(n_jobs, n_todo))


def classify_files(files: pd.DataFrame, previous: pd.DataFrame, models,
                   classify: Mapping[str, Any]) -> pd.DataFrame:
    """The result table: one row per file (``status`` ok or unreadable), files already classified
    with the same model version taken from ``previous``. Every file is analysed as the model's
    bundle says (its extraction parameters and genres, not today's conf)."""
    loaded: inference.LoadedModel = models.load(classify.get("model"))
    files = files.copy()
    files["model"], files["model_version"] = loaded.name, loaded.version
    reused = _reusable(files, previous)
    todo = files.loc[~files["path"].isin(reused["path"]), "path"].tolist()
    logger.info("classify: model '%s' version %s; %d files, %d already classified with it, "
                "%d to analyse", loaded.name, loaded.version, len(files), len(reused), len(todo))
    max_bytes = int(float(classify.get("max_file_mb", 50)) * 2**20)
    max_analysed_s = classify.get("max_analysed_s")
    rows = _run_all(todo, loaded, max_bytes, _n_jobs(classify, len(todo)),
                    _flag(classify.get("progress", True)),
                    float(max_analysed_s) if max_analysed_s else None)
    new = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("size_bytes", "mtime_ns")])
    new = new.merge(files[["path", "size_bytes", "mtime_ns"]], on="path", how="left")
    table = pd.concat([reused, new], ignore_index=True) if len(reused) else new
    table = table.reindex(columns=COLUMNS).sort_values("path", ignore_index=True)
    bad = table[table["status"] != "ok"]
    for _, row in bad.iterrows():
        logger.info("classify: unreadable: %s", row["error"])
    logger.info("classify: %d classified, %d unreadable", len(table) - len(bad), len(bad))
    return table


def _reusable(files: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    if previous is None or previous.empty or not set(RESUME_KEY) <= set(previous.columns):
        return pd.DataFrame(columns=COLUMNS)
    prev = previous.copy()
    prev["model_version"] = prev["model_version"].astype(str)
    keys = files[RESUME_KEY].astype({"model_version": str})
    hits = prev.merge(keys, on=RESUME_KEY, how="inner").drop_duplicates("path", keep="last")
    return hits.reindex(columns=COLUMNS)


# --- reports ------------------------------------------------------------------------------------


def plot_summary(results: pd.DataFrame, genres: list[str]):
    """Two panels: how many files went to each genre, and how sure the model was (histogram of
    the top probability, with the chance level 1/len(genres) marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ok = results[results["status"] == "ok"]
    n_bad = int((results["status"] != "ok").sum())
    model = ok["model"].iloc[0] if len(ok) else (results["model"].iloc[0] if len(results) else "")
    counts = ok["genre"].value_counts().reindex(genres, fill_value=0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    bars = left.barh(counts.index[::-1], counts.to_numpy()[::-1], color="tab:blue")
    left.bar_label(bars, padding=2, fontsize=8)
    left.set_xlabel("files")
    left.set_title("Files per predicted genre")
    left.margins(x=0.12)
    right.hist(ok["probability"].astype(float), bins=np.linspace(0, 1, 21), color="tab:green",
               edgecolor="white")
    right.axvline(1 / len(genres), color="grey", linestyle="--")
    # labelled above the axes, where no bar can be
    right.text(1 / len(genres), 1.01, f"chance (1/{len(genres)})", color="grey", fontsize=8,
               ha="center", va="bottom", transform=right.get_xaxis_transform())
    right.set_xlim(0, 1)
    right.set_xlabel("probability of the predicted genre")
    right.set_ylabel("files")
    right.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    right.set_title("Confidence", pad=14)
    fig.suptitle(f"{len(ok)} files classified with '{model}'"
                 + (f", {n_bad} unreadable (listed in the table)" if n_bad else ""))
    return fig


def make_playlists(results: pd.DataFrame, classify: Mapping[str, Any]) -> dict[str, str]:
    """One extended-M3U playlist per predicted genre (``<genre>.m3u``: absolute paths, most
    confident first), or nothing when ``classify.playlists`` is false."""
    if not _flag(classify.get("playlists", False)):
        return {}
    ok = results[results["status"] == "ok"].sort_values(["genre", "probability", "path"],
                                                         ascending=[True, False, True])
    playlists = {}
    for genre, group in ok.groupby("genre", sort=True):
        lines = ["#EXTM3U"]
        for _, row in group.iterrows():
            seconds = int(round(float(row["duration_s"])))
            lines += [f"#EXTINF:{seconds},{Path(row['path']).stem} ({row['probability']:.2f})",
                      str(row["path"])]
        playlists[str(genre)] = "\n".join(lines) + "\n"
    return playlists


def result_lines(results: pd.DataFrame) -> Iterable[str]:
    """One human line per file: genre, probability, path (or UNREADABLE and the reason)."""
    for _, row in results.iterrows():
        if row["status"] == "ok":
            yield f"{row['genre']:<10} {float(row['probability']):.2f}  {row['path']}"
        else:
            yield f"{'UNREADABLE':<10}  --   {row['error']}"
