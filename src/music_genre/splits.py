"""Track-level train/validation/test splits: random (stratified, seeded), a user's CSV, or the
fault-filtered, artist-disjoint GTZAN split of the literature.

GTZAN is ordered by artist (a genre's ids 00000-00009 are one or two artists), so a random
split puts the same artists in training and test and flatters every model. Sturm's analysis of
GTZAN led to an artist-filtered split (Kereliuk, Sturm & Larsen 2015; 443 / 197 / 290 tracks,
no artist in two parts, repeated and faulty tracks left out): the split MusiCNN, Jukebox, MERT
and MARBLE report on. Its lists ship in ``conf/base/splits/gtzan_filtered.csv`` (as published in
torchaudio's GTZAN dataset module) and are read through the catalog (``filtered_split_lists``).

No Kedro here: plain functions on DataFrames, used by the data-processing node.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

PARTS = ("train", "val", "test")
SCHEMES = ("filtered", "random", "predefined")


def _strip_ext(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.replace(r"\.(wav|au|mp3|flac|ogg)$", "", regex=True)


def check_lists(lists: pd.DataFrame, where: str) -> pd.DataFrame:
    """``track_id``/``split`` rows with known part names and no id in two parts."""
    missing = {"track_id", "split"} - set(lists.columns)
    if missing:
        raise ValueError(f"{where} lacks column(s) {sorted(missing)}; it needs 'track_id' and "
                         "'split' (train/val/test)")
    out = pd.DataFrame({"track_id": _strip_ext(lists["track_id"]),
                        "split": lists["split"].astype(str).str.strip()})
    bad = sorted(set(out["split"]) - set(PARTS))
    if bad:
        raise ValueError(f"{where}: unknown split values {bad}; use train, val or test")
    twice = out[out["track_id"].duplicated(keep=False)]
    if len(twice):
        raise ValueError(f"{where}: track id(s) {sorted(set(twice['track_id']))[:5]} appear more "
                         "than once; each track belongs to exactly one part")
    return out


def random_split(ok: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """Per-genre stratified, seeded; at least one validation and one test track per genre that
    has three or more tracks, so small collections still split cleanly."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"params:split: val={val} and test={test} must be fractions in (0, 1) "
                         "with val + test < 1")
    rng = np.random.default_rng(seed)
    labels = np.empty(len(ok), dtype=object)
    for genre in sorted(ok["genre"].unique()):
        idx = rng.permutation(np.flatnonzero(ok["genre"].to_numpy() == genre))
        n = len(idx)
        n_test = max(1, int(round(test * n))) if n >= 3 else 0
        n_val = max(1, int(round(val * n))) if n >= 3 else 0
        labels[idx[:n_test]] = "test"
        labels[idx[n_test : n_test + n_val]] = "val"
        labels[idx[n_test + n_val :]] = "train"
    return ok.assign(split=labels)


def listed_split(ok: pd.DataFrame, lists: pd.DataFrame) -> tuple[pd.DataFrame, list[str],
                                                                   list[str]]:
    """The usable tracks the lists name, in their part; plus the listed ids that are missing
    here and the present ids the lists leave out (reported by the caller)."""
    present = set(ok["track_id"])
    listed = set(lists["track_id"])
    out = ok.merge(lists, on="track_id", how="inner")
    return out, sorted(listed - present), sorted(present - listed)


def coverage(ok: pd.DataFrame, lists: pd.DataFrame) -> float:
    """Share of the listed tracks that are present and usable."""
    return float(lists["track_id"].isin(set(ok["track_id"])).mean()) if len(lists) else 0.0


def _preview(ids: list[str], n: int = 8) -> str:
    return ", ".join(ids[:n]) + (f" ... (+{len(ids) - n})" if len(ids) > n else "")


def make_split(ok: pd.DataFrame, predefined: pd.DataFrame, filtered_lists: pd.DataFrame,
               split: dict[str, Any]) -> pd.DataFrame:
    """Assign every usable track (``track_id``, ``genre``) to train/val/test.

    ``split.scheme``:

    * ``filtered`` (default): the fault-filtered GTZAN lists when the collection covers at least
      ``filtered_min_coverage`` of them (full GTZAN); listed tracks that are missing and present
      tracks the lists exclude are reported in one warning each. On a collection that does not
      cover them (the 100-track sample, the demo) it falls back to ``random`` with one log line.
    * ``random``: per-genre stratified and seeded (``val``, ``test``, ``seed``).
    * ``predefined``: a user's CSV (``track_id``, ``split``), ``--params split_csv=...``.

    A user's CSV, when present, is used whatever the scheme says except ``random``.
    """
    ok = ok[["track_id", "genre"]].reset_index(drop=True)
    ok["track_id"] = ok["track_id"].astype(str)
    scheme = str(split.get("scheme", "filtered"))
    if scheme not in SCHEMES:
        raise ValueError(f"params:split.scheme: '{scheme}' is not one of {list(SCHEMES)}")
    if len(predefined) and scheme != "random":
        scheme = "predefined"
    if scheme == "predefined":
        if not len(predefined):
            raise ValueError("params:split.scheme is 'predefined' but no split CSV was found: "
                             "put one at data/01_raw/predefined_split.csv or pass "
                             "--params split_csv=path/to.csv (columns track_id,split)")
        lists = check_lists(predefined, "predefined split CSV")
        out, _, left_out = listed_split(ok, lists)
        logger.info("Split (predefined CSV): %d of %d usable tracks assigned %s", len(out),
                    len(ok), out["split"].value_counts().to_dict())
        if left_out:
            logger.info("Predefined split: %d usable track(s) not in the CSV are not used: %s",
                        len(left_out), _preview(left_out))
        return out
    if scheme == "filtered":
        lists = check_lists(filtered_lists, "filtered split lists")
        share = coverage(ok, lists)
        minimum = float(split.get("filtered_min_coverage", 0.9))
        if share >= minimum:
            out, missing, excluded = listed_split(ok, lists)
            if missing:
                logger.warning("Filtered GTZAN split: %d listed track(s) are missing or unusable "
                               "here: %s", len(missing), _preview(missing))
            if excluded:
                logger.warning("Filtered GTZAN split: %d present track(s) are left out by the "
                               "fault-filtered lists (repeats, distortions, mislabels): %s",
                               len(excluded), _preview(excluded))
            logger.info("Split (fault-filtered GTZAN, artist-disjoint): %s",
                        out["split"].value_counts().to_dict())
            return out
        logger.info("Split: the collection covers %.0f %% of the fault-filtered GTZAN lists "
                    "(needs %.0f %%): using a random stratified split instead (params:split)",
                    100 * share, 100 * minimum)
    out = random_split(ok, float(split["val"]), float(split["test"]), int(split["seed"]))
    logger.info("Split (random, stratified by genre): %s", out["split"].value_counts().to_dict())
    return out
