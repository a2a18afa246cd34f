"""Honest evaluation helpers: track-level cross-validation folds, interval summaries, probability
averaging (the ensemble) and the real-world degradations used to measure robustness.

Plain Python (no Kedro): the ``evaluate_cv`` and ``ensemble`` pipelines and ``benchmarks/`` call
these functions.

Why folds are built from track ids only: everything cut from one track (its features, its
spectrogram windows) follows the track id, so nothing of a track can sit on both sides of a fold.
Why a grouped scheme too: GTZAN is ordered by artist (consecutive ids of a genre often come from one
artist or album), so a plain stratified split puts the same artist on both sides and flatters every
model. Contiguous id blocks per genre are a rough artist proxy; a user's artist column is better.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SCHEMES = ("stratified", "grouped", "predefined")
FOLD_COLUMNS = ["track_id", "genre", "group", "scheme", "repeat", "fold"]


def name_list(value: Any) -> list[str]:
    """A list parameter that may come from the command line as one string: ``a+b+c``
    (``--params "evaluate_cv.run=rf+cnn"``; Kedro splits ``--params`` on commas)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(",", "+").split("+") if v.strip()]
    return [str(v) for v in value]


def check_chains(chains: Sequence[str], where: str) -> None:
    """Every chain is ``full`` or degradations of ``audio.DEGRADATIONS`` joined by ``>``."""
    from music_genre.audio import DEGRADATIONS

    for chain in chains:
        parts = [p.strip() for p in str(chain).split(">")]
        if not all(p in DEGRADATIONS[1:] for p in parts) and chain != "full":
            raise ValueError(f"{where}: unknown degradation '{chain}'; use one of "
                             f"{list(DEGRADATIONS[1:])}, or a chain of them joined by '>' "
                             "(e.g. mp3>resample_8k)")


# --------------------------------------------------------------------------------------------
# Folds
# --------------------------------------------------------------------------------------------


def artist_proxy_groups(track_ids: Sequence[str], genres: Sequence[str], block_size: int) -> np.ndarray:
    """``<genre>:<block>`` with block = numeric track id // ``block_size`` (GTZAN's artist order).

    A track id without a number (not GTZAN naming) becomes its own group, so grouping never
    silently merges unrelated tracks.
    """
    if block_size < 1:
        raise ValueError(f"evaluate_cv.grouped.block_size must be >= 1, got {block_size}")
    out = []
    for tid, genre in zip(track_ids, genres):
        match = re.search(r"(\d+)$", str(tid))
        out.append(f"{genre}:{int(match.group(1)) // block_size}" if match else f"{genre}:{tid}")
    return np.array(out, dtype=object)


def make_folds(tracks: pd.DataFrame, cv: dict[str, Any], predefined: pd.DataFrame | None = None,
               groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Track-level CV folds for every scheme in ``cv['schemes']`` as one long table.

    ``tracks`` has ``track_id`` and ``genre`` (one row per usable track). Returns one row per
    (scheme, repeat, track) with the fold in which that track is *tested*:

    * ``stratified``: repeated stratified k-fold (``n_splits`` × ``n_repeats``);
    * ``grouped``: stratified group k-fold, groups from ``groups`` (a user's CSV with ``track_id``
      and ``cv['grouped']['column']``, e.g. artist) or else contiguous id blocks per genre;
    * ``predefined``: the ``fold`` column of a user's CSV (``predefined``), one repeat.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    tracks = tracks[["track_id", "genre"]].copy()
    tracks["track_id"] = tracks["track_id"].astype(str).to_numpy()
    tracks["genre"] = tracks["genre"].astype(str).to_numpy()
    tracks = tracks.drop_duplicates("track_id").reset_index(drop=True)
    ids, y = tracks["track_id"].to_numpy(), tracks["genre"].to_numpy()
    n_splits, n_repeats = int(cv["n_splits"]), int(cv["n_repeats"])
    seed = int(cv["seed"])  # evaluate_cv.seed: ${globals:seed} (no second default here)
    min_class = int(pd.Series(y).value_counts().min()) if len(y) else 0
    if n_splits < 2 or min_class < n_splits:
        raise ValueError(f"evaluate_cv.n_splits={n_splits}: needs 2 <= n_splits <= the smallest "
                         f"genre's track count ({min_class}); lower evaluate_cv.n_splits")
    group_cfg = cv.get("grouped", {}) or {}
    grp = _groups(tracks, groups, group_cfg)

    frames = []
    for scheme in cv["schemes"]:
        if scheme not in SCHEMES:
            raise ValueError(f"evaluate_cv.schemes: unknown scheme '{scheme}'; use {SCHEMES}")
        if scheme == "predefined":
            if predefined is None or not len(predefined):
                logger.info("evaluate_cv: no predefined CSV given, scheme 'predefined' skipped")
                continue
            frames.append(_predefined_folds(tracks, grp, predefined))
            continue
        for r in range(n_repeats):
            fold = np.full(len(ids), -1)
            if scheme == "stratified":
                splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed + r)
                parts = splitter.split(ids, y)
            else:
                n_groups = len(set(grp))
                if n_groups < n_splits:
                    raise ValueError(f"grouped CV: {n_groups} groups for {n_splits} folds; lower "
                                     "evaluate_cv.n_splits or evaluate_cv.grouped.block_size")
                splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed + r)
                parts = splitter.split(ids, y, grp)
            for k, (_, test) in enumerate(parts):
                fold[test] = k
            frames.append(pd.DataFrame({"track_id": ids, "genre": y, "group": grp,
                                        "scheme": scheme, "repeat": r, "fold": fold}))
    if not frames:
        raise ValueError("evaluate_cv.schemes produced no folds; list stratified and/or grouped")
    out = pd.concat(frames, ignore_index=True)[FOLD_COLUMNS]
    _check_no_leak(out)
    return out


def _groups(tracks: pd.DataFrame, groups: pd.DataFrame | None, cfg: dict[str, Any]) -> np.ndarray:
    column = cfg.get("column")
    if groups is not None and len(groups) and column:
        if {"track_id", column} - set(groups.columns):
            raise ValueError(f"groups CSV needs columns 'track_id' and '{column}' "
                             f"(evaluate_cv.grouped.column); it has {list(groups.columns)}")
        lookup = dict(zip(_strip_ext(groups["track_id"]), groups[column].astype(str)))
        missing = [t for t in tracks["track_id"] if t not in lookup]
        if missing:
            raise ValueError(f"groups CSV: no '{column}' for {len(missing)} track(s), e.g. "
                             f"{missing[:3]}; add them or drop the CSV to use id blocks")
        return np.array([lookup[t] for t in tracks["track_id"]], dtype=object)
    return artist_proxy_groups(tracks["track_id"], tracks["genre"], int(cfg.get("block_size", 5)))


def _strip_ext(ids: pd.Series) -> np.ndarray:
    return ids.astype(str).str.replace(r"\.(wav|au)$", "", regex=True).to_numpy()


def _predefined_folds(tracks: pd.DataFrame, grp: np.ndarray, predefined: pd.DataFrame) -> pd.DataFrame:
    if "fold" not in predefined.columns:
        raise ValueError("predefined CSV has no 'fold' column: add one (integer test fold of each "
                         "track) to cross-validate on it, or drop 'predefined' from "
                         "evaluate_cv.schemes")
    lookup = dict(zip(_strip_ext(predefined["track_id"]), predefined["fold"].astype(int)))
    keep = tracks["track_id"].isin(list(lookup)).to_numpy()
    t = tracks[keep]
    folds = np.array([lookup[i] for i in t["track_id"]])
    _, folds = np.unique(folds, return_inverse=True)  # any labels → 0..k-1
    return pd.DataFrame({"track_id": t["track_id"].to_numpy(), "genre": t["genre"].to_numpy(),
                         "group": grp[keep], "scheme": "predefined", "repeat": 0, "fold": folds})


def _check_no_leak(folds: pd.DataFrame) -> None:
    """Each track is tested exactly once per (scheme, repeat); groups never straddle folds."""
    for (scheme, r), part in folds.groupby(["scheme", "repeat"]):
        if part["track_id"].duplicated().any() or (part["fold"] < 0).any():
            raise AssertionError(f"CV folds {scheme}/{r}: a track is missing or tested twice")
        if scheme == "grouped" and (part.groupby("group")["fold"].nunique() > 1).any():
            raise AssertionError(f"CV folds {scheme}/{r}: a group is split across folds")


def fold_partition(folds: pd.DataFrame, scheme: str, repeat: int, fold: int, val_fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) track ids of one fold; val is a stratified slice of the training folds
    (for early stopping), so the test fold is never seen before scoring."""
    part = folds[(folds["scheme"] == scheme) & (folds["repeat"] == repeat)]
    test = part[part["fold"] == fold]
    rest = part[part["fold"] != fold]
    rng = np.random.default_rng(seed + 1000 * repeat + fold)
    val_mask = np.zeros(len(rest), bool)
    genres = rest["genre"].to_numpy()
    for g in np.unique(genres):
        idx = rng.permutation(np.flatnonzero(genres == g))
        # at least one per genre (when it has two) so early stopping always has data
        n_val = max(1, int(round(val_fraction * len(idx)))) if len(idx) >= 2 else 0
        val_mask[idx[:n_val]] = True
    ids = rest["track_id"].to_numpy().astype(str)
    return ids[~val_mask], ids[val_mask], test["track_id"].to_numpy().astype(str)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def wilson_interval(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # within [0, 1] and holding p: at p = 0 or 1 rounding put a bound a hair off (-3e-17,
    # 1 - 1e-16: a negative error bar, which matplotlib refuses)
    return float(max(0.0, min(centre - half, p))), float(min(1.0, max(centre + half, p)))


def summarise_folds(fold_metrics: pd.DataFrame, oof: pd.DataFrame) -> pd.DataFrame:
    """Per (model, scheme): mean ± sd over folds of accuracy and macro F1, and the pooled
    out-of-fold accuracy with a 95 % Wilson interval counting each track once (repeats re-test the
    same tracks, so they add no independent evidence)."""
    rows = []
    for (model, scheme), part in fold_metrics.groupby(["model", "scheme"], sort=False):
        o = oof[(oof["model"] == model) & (oof["scheme"] == scheme)]
        per_track = (o["genre"] == o["predicted"]).groupby(o["track_id"]).mean()
        n_tracks = int(len(per_track))
        pooled = float(per_track.mean()) if n_tracks else float("nan")
        lo, hi = wilson_interval(pooled * n_tracks, n_tracks)
        acc, f1 = part["accuracy"].to_numpy(), part["f1_macro"].to_numpy()
        # macro F1 over all tracks of a repeat (every genre present), averaged over repeats
        from sklearn.metrics import f1_score

        f1_pooled = float(np.mean([f1_score(rep["genre"], rep["predicted"], average="macro",
                                            zero_division=0)
                                   for _, rep in o.groupby("repeat")])) if len(o) else np.nan
        rows.append({
            "model": model, "scheme": scheme, "n_folds": len(part), "n_tracks": n_tracks,
            "accuracy_mean": float(acc.mean()), "accuracy_sd": _sd(acc),
            "f1_macro_mean": float(f1.mean()), "f1_macro_sd": _sd(f1),
            "f1_macro_pooled": f1_pooled,
            "accuracy_pooled": pooled, "accuracy_ci95_low": lo, "accuracy_ci95_high": hi,
            "train_seconds_mean": float(part["train_seconds"].mean()),
        })
    return pd.DataFrame(rows)


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = ["| Model | CV scheme | Accuracy (mean ± sd over folds) | Macro F1 (folds) | Macro F1 "
             "(pooled) | Pooled accuracy [95 % Wilson] | Folds | Tracks |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(
            f"| {r.model} | {r.scheme} | {100 * r.accuracy_mean:.1f} ± {100 * r.accuracy_sd:.1f}"
            f" % | {r.f1_macro_mean:.3f} ± {r.f1_macro_sd:.3f} | {r.f1_macro_pooled:.3f} | "
            f"{100 * r.accuracy_pooled:.1f} % "
            f"[{100 * r.accuracy_ci95_low:.1f}, {100 * r.accuracy_ci95_high:.1f}] | "
            f"{r.n_folds} | {r.n_tracks} |")
    lines += ["", "Folds are built from track ids: nothing of one track is on both sides. "
              "`grouped` keeps artist groups (or the contiguous-id proxy) on one side; "
              "`stratified` does not and is optimistic on GTZAN."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Ensemble
# --------------------------------------------------------------------------------------------


def average_probabilities(predictions: Sequence[pd.DataFrame], genres: Sequence[str],
                          weights: Sequence[float] | None = None,
                          keys: Sequence[str] = ("track_id",)) -> pd.DataFrame:
    """Weighted mean of several models' per-genre probability columns on the rows they share.

    Each frame has ``keys`` columns, ``genre`` and one probability column per genre (the
    ``<model>.predictions`` layout). Rows are matched on ``keys``; rows only some models scored
    are dropped with a warning, as averaging over different model sets would be incomparable.
    """
    genres = list(genres)
    frames = [p for p in predictions if p is not None and len(p)]
    if not frames:
        raise ValueError("ensemble: no model predictions to average; train at least one model")
    weights = np.ones(len(frames)) if weights is None else np.asarray(weights, float)
    if len(weights) != len(frames) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"ensemble weights {list(weights)} must be non-negative, one per model")
    keys = list(keys)
    for i, f in enumerate(frames):
        missing = set(keys + ["genre"] + genres) - set(f.columns)
        if missing:
            raise ValueError(f"ensemble: predictions #{i} lack columns {sorted(missing)}")
    index = [pd.Index(f[keys].astype(str).agg("\x1f".join, axis=1)) for f in frames]
    for f, ix in zip(frames, index):
        if ix.has_duplicates:
            raise ValueError(f"ensemble: predictions have duplicate rows for keys {keys}")
    common = index[0][index[0].isin(set.intersection(*(set(ix) for ix in index)))]
    if not len(common):
        raise ValueError("ensemble: the models' predictions share no track; were they evaluated "
                         "on the same split?")
    dropped = max(len(ix) for ix in index) - len(common)
    if dropped:
        logger.warning("ensemble: %d row(s) not scored by every model are left out", dropped)
    total = np.zeros((len(common), len(genres)))
    truth = None
    for f, ix, w in zip(frames, index, weights):
        aligned = f.set_axis(ix).loc[common]
        total += w * aligned[genres].to_numpy(float)
        g = aligned["genre"].astype(str).to_numpy()
        if truth is not None and not np.array_equal(truth, g):
            raise ValueError("ensemble: the models disagree on a track's true genre")
        truth = g
    proba = total / weights.sum()
    out = frames[0].set_axis(index[0]).loc[common, keys].reset_index(drop=True)
    out["genre"] = truth
    out["predicted"] = [genres[i] for i in proba.argmax(axis=1)]
    out[genres] = proba
    return out
