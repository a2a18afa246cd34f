"""The ensemble: the models' test-split probabilities averaged, scored like any other model."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from music_genre import evaluation, roster, selection
from music_genre.models.reports import (
    classification_metrics,
    confidence_figure,
    confusion_figure,
)

logger = logging.getLogger(__name__)


def member_weights(params: dict[str, Any], oof: pd.DataFrame | None,
                   genres: list[str]) -> tuple[dict[str, float], str]:
    """Each member's weight and how it was chosen.

    ``params['weights']``: ``auto`` (default) chooses them on the members' grouped out-of-fold
    predictions of the latest ``evaluate_cv`` run (members that do not help get 0); without such
    predictions every member weighs 1 (said in the log). A mapping sets them by hand.
    """
    names = list(params.get("models") or roster.ensemble_members())
    given = params.get("weights", "auto")
    if isinstance(given, dict):
        return {m: float(given.get(m, 1.0)) for m in names}, "params:ensemble.weights"
    if given != "auto":
        raise ValueError(f"params:ensemble.weights: {given!r}; use auto or a mapping "
                         "{model: weight}")
    scheme = str(params.get("weights_scheme", "grouped"))
    chosen = selection.ensemble_weights(oof, names, genres, scheme=scheme)
    if chosen is None:
        logger.info("ensemble: no %s out-of-fold predictions of two or more of %s (run `kedro "
                       "run --pipeline evaluate_cv` first); every member weighs 1", scheme, names)
        return dict.fromkeys(names, 1.0), "equal (no cross-validation predictions)"
    return {m: chosen.get(m, 0.0) for m in names}, f"{scheme} out-of-fold predictions"


def evaluate_ensemble(params: dict[str, Any], genres: list[str], oof: pd.DataFrame,
                      *metrics_and_predictions) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame,
                                                         Any, Any]:
    """Average the member models' ``<model>.predictions`` with weights (:func:`member_weights`).

    ``metrics_and_predictions`` alternates each member's metrics dict and predictions table, in
    the order of ``params['models']``. Returns the served bundle (members, weights, how they
    were chosen) and the same reports as the model template.
    """
    names = list(params.get("models") or roster.ensemble_members())
    if len(metrics_and_predictions) != 2 * len(names):
        raise ValueError("ensemble: one metrics and one predictions dataset per model expected")
    weights, weights_from = member_weights(params, oof, genres)
    members = [m for m in names if weights[m] > 0]
    if not members:
        raise ValueError("ensemble.weights: every weight is 0; give at least one model weight > 0")
    by_name = {m: (metrics_and_predictions[2 * i], metrics_and_predictions[2 * i + 1])
               for i, m in enumerate(names)}
    avg = evaluation.average_probabilities([by_name[m][1] for m in members], genres,
                                           [weights[m] for m in members])
    index = {g: i for i, g in enumerate(genres)}
    y = np.array([index[g] for g in avg["genre"]])
    proba = avg[genres].to_numpy(float)
    metrics = classification_metrics(y, proba, genres)
    member_metrics = [by_name[m][0] for m in members]
    metrics.update({
        "model": params.get("name", "ensemble"), "kind": "ensemble",
        "members": {m: weights[m] for m in members},
        "member_accuracy": {m: float(by_name[m][0]["accuracy"]) for m in members},
        # training it costs the members' training; inference runs every member
        "train_seconds": float(sum(m.get("train_seconds", 0.0) for m in member_metrics)),
        "inference_ms_per_track": float(sum(m.get("inference_ms_per_track", 0.0)
                                            for m in member_metrics)),
        "n_train": member_metrics[0].get("n_train"),
        "weights_from": weights_from,
    })
    logger.info("ensemble of %s: test accuracy %.3f (members %s)", members, metrics["accuracy"],
                {m: round(v, 3) for m, v in metrics["member_accuracy"].items()})
    per_genre = pd.DataFrame(metrics["per_genre"]).T.rename_axis("genre").reset_index()
    cm = confusion_figure(np.array(metrics["confusion_matrix"]), genres,
                           f"ensemble ({' + '.join(members)}): accuracy {metrics['accuracy']:.1%}"
                           f" ({len(y)} test tracks)")
    confidence = confidence_figure(proba, y, f"ensemble ({' + '.join(members)}): the members' "
                                    "probabilities averaged (no training of its own)")
    # the trainings whose test predictions were averaged: the service serves exactly these
    pinned = {m: by_name[m][0]["bundle_id"] for m in members if by_name[m][0].get("bundle_id")}
    bundle = {"kind": "ensemble", "members": {m: weights[m] for m in members},
              "member_bundles": pinned,
              "weights_from": weights_from, "genres": list(genres),
              "member_split_accuracy": metrics["member_accuracy"]}
    return bundle, metrics, per_genre, avg, cm, confidence
