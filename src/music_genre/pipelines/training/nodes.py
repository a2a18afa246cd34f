"""The train → bundle → evaluate template's nodes, shared by every template model (rf, mlp, cnn, ...).

``model_input`` is a feature table (one row per track) or a spectrogram set; ``split`` assigns
each track to train/val/test; ``params`` is the model's own parameter block (``params:<model>``).
What a model reads is built by :mod:`music_genre.models.inputs`, its reports by
:mod:`music_genre.models.reports` (plain modules, shared with tuning and cross-validation).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from music_genre.models import bundle, inputs, reports, training

logger = logging.getLogger(__name__)


def train_model(model_input, split: pd.DataFrame, params: dict[str, Any], genres: list[str],
                seed: int, degraded: pd.DataFrame | None = None) -> tuple[Any, dict[str, Any]]:
    """Fit the model on the training split (plus degraded copies of its tracks when
    ``params['augment']`` lists chains of ``degraded``), early-stopping on the validation split
    (``params['fit_on']: train+val``, for models that do not early-stop: on both).
    """
    x_train, y_fit, x_val, y_val, columns = inputs.fit_inputs(model_input, split, params, genres,
                                                              degraded)
    model, info = training.fit(params, x_train, y_fit, x_val, y_val, n_classes=len(genres),
                               seed=int(params.get("seed", seed)))
    info["fit_on"] = inputs.fit_on(params)  # train | train+val (the metrics report it)
    if columns is not None:
        # what the service must compute for this model: the columns, in order, and how
        # (bundle_model puts it in the model's contract; the metrics report it)
        info["input_spec"] = {"columns": columns, "rich_segment_s": params.get("rich_segment_s"),
                              "degradation": params.get("input_degradation")}
        info["n_features"] = len(columns)
    return model, info


def bundle_model(model, train_info: dict[str, Any], params: dict[str, Any], genres: list[str],
                 extraction: dict[str, Any], musicnn: dict[str, Any] | None = None
                 ) -> bundle.ModelBundle:
    """The ``{model}.model`` bundle: the fitted model with its serving contract (this run's
    ``params:extraction``, the input spec, ``params:musicnn`` for a head on the pretrained
    networks, the genres), which the service and classify read instead of today's conf."""
    return bundle.trained_bundle(model, train_info, params, genres, extraction, musicnn)


def evaluate_model(model, model_input, split: pd.DataFrame, train_info: dict[str, Any],
                   params: dict[str, Any], genres: list[str],
                   degraded: pd.DataFrame | None = None):
    """Test-split metrics, per-genre table, confusion matrix, training curves, predictions."""
    bundle_id = None
    if isinstance(model, bundle.ModelBundle):  # the saved {model}.model: what is served
        model, bundle_id = model.model, model.contract.get("bundle_id")
    test_ids, y_test = inputs.labels(split, "test", genres)
    table = inputs.input_table(model_input, degraded, params)
    x_test = inputs.select(table, test_ids, inputs.input_columns(table, params))
    start = time.perf_counter()
    proba = training.predict_proba(model, x_test, len(genres))
    infer_s = time.perf_counter() - start
    metrics, *rest = reports.test_reports(params.get("name", params["kind"]), params["kind"],
                                          proba, y_test, test_ids, infer_s, train_info, genres)
    metrics["bundle_id"] = bundle_id  # which training these figures describe (the ensemble's pin)
    return (metrics, *rest)
