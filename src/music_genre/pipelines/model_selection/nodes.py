"""Score every trained model on music by other artists, then rank them (grouped CV first)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from music_genre import audio, inference, roster, selection
from music_genre.models import bundle as bundles

logger = logging.getLogger(__name__)


def evaluate_other_artists(files: pd.DataFrame, params: dict[str, Any], genres: list[str],
                           network: Any, ensemble_bundle: dict[str, Any],
                           *models_and_metrics) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each model's answer for every file of a folder of music by artists the training
    collection does not contain (``holdout_root``; e.g. the other-artist GTZAN excerpts), through
    the service's own input code (:func:`music_genre.inference.predict_bytes`: each model's input
    as its bundle says).

    Clips shorter than a 30 s window are looped up to it, as short training clips are
    (``audio.windows``); ``params['min_duration_s']`` (default 1 s) replaces the service's
    minimum so 2-3 s excerpts are accepted. Files outside ``genres`` folders are ignored.
    Returns one row per model and file, and per model its accuracy (n, 95 % interval, recall
    per genre). Empty when the folder is absent.
    """
    names = roster.single_models() + ["ensemble"]
    if files is None or not len(files):
        logger.info("No other-artist folder (holdout_root): the ranking uses grouped CV and "
                    "the test split only")
        return pd.DataFrame(columns=["model", "path", "genre", "predicted"]), {}
    files = files[files["genre"].isin(genres)]
    limit = params.get("max_files")
    if limit:
        files = files.groupby("genre", group_keys=False).head(int(limit))
    policy = inference.InputPolicy(min_duration_s=float(params.get("min_duration_s", 1.0)))
    loaded = {}
    for i, name in enumerate([n for n in names if n != "ensemble"]):
        model, metrics = models_and_metrics[2 * i], models_and_metrics[2 * i + 1]
        loaded[name] = inference.loaded_model(name, model, metrics, network)
    if "ensemble" in names and ensemble_bundle:
        try:
            loaded["ensemble"] = inference.ensemble_model(ensemble_bundle, loaded)
        except bundles.IncompatibleBundle as exc:  # built over members retrained since
            logger.warning("other artists: the ensemble is not scored: %s", exc)
    inference.pin_blas_threads()
    rows = []
    from tqdm.auto import tqdm

    for rec in tqdm(files.to_dict("records"), desc="other-artist files", unit="file",
                    disable=not params.get("progress", True)):
        with open(rec["path"], "rb") as f:
            data = f.read()
        for name, model in loaded.items():
            try:
                p = inference.predict_bytes(data, model, rec["path"], policy)
            except (audio.AudioError, inference.InputError) as exc:
                logger.warning("other artists: %s skipped (%s)", rec["path"], exc)
                break
            rows.append({"model": name, "path": rec["relpath"], "genre": rec["genre"],
                         "predicted": p.genre, **p.probabilities})
    table = pd.DataFrame(rows)
    summary = {}
    for name, part in table.groupby("model", sort=False):
        correct = part["genre"] == part["predicted"]
        lo, hi = selection.wilson_interval(correct.sum(), len(part))
        summary[name] = {"accuracy": float(correct.mean()), "n": int(len(part)),
                         "ci95": [lo, hi],
                         "recall": {g: float(correct[part["genre"] == g].mean())
                                    for g in genres if (part["genre"] == g).any()}}
        logger.info("%s on %d other-artist files: %.1f %% [%.1f, %.1f]", name, len(part),
                    100 * correct.mean(), 100 * lo, 100 * hi)
    return table, summary


def rank_models(cv_summary: pd.DataFrame, other_artists: dict[str, Any],
                params: dict[str, Any], *metrics: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The ranking (:func:`music_genre.selection.rank_models`) and its Markdown table; the first
    model is the service's default."""
    by_name = {str(m["model"]): m for m in metrics}  # every model's metrics name it
    result = selection.rank_models(by_name, cv_summary, other_artists,
                                   cv_scheme=str(params.get("cv_scheme", "grouped")))
    logger.info("Model ranking (by %s): %s; served default: %s", result["chosen_by"],
                [r["model"] for r in result["ranking"]], result["default"])
    return result, selection.ranking_markdown(result)

