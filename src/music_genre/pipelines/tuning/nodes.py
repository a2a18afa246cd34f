"""The tuning pipelines' nodes: run trials of a model's Optuna study, report it, and turn the
best trial into a parameter block. The study machinery (search spaces, storage, pruning,
MLflow trial runs, plots) is the plain module :mod:`music_genre.tuning`."""

from __future__ import annotations

import copy
import logging
from typing import Any

import optuna
import pandas as pd

from music_genre import tuning as tuning_lib
from music_genre.models import inputs

logger = logging.getLogger(__name__)


def tune_model(model_input, split: pd.DataFrame, base: dict[str, Any],
               model_tuning: dict[str, Any], tuning: dict[str, Any], genres: list[str],
               seed: int, degraded: pd.DataFrame | None = None) -> optuna.Study:
    """Run ``tuning.n_trials`` trials (within ``tuning.timeout_s``) of the model's study.

    Trains on the split's train tracks and scores the val tracks; test tracks are not read.
    The trials see exactly what the model's own training sees (:func:`inputs.fit_inputs`: its
    input table, feature columns, band-limited input and augmented copies).
    """
    x_train, y_train, x_val, y_val, _ = inputs.fit_inputs(model_input, split, base, genres,
                                                          degraded, tuning=True)
    if not len(y_val):
        raise ValueError("tuning needs validation tracks in the split "
                         f"({len(y_train)} train rows, 0 val)")
    metric = tuning.get("metric", "val_accuracy")
    storage = str(tuning["storage"])
    study = tuning_lib.open_study(
        study_name=str(model_tuning.get("study_name") or base.get("name", base["kind"])),
        storage=storage, metric=metric, seed=int(seed), sampler=tuning.get("sampler"),
        pruner=tuning.get("pruner"), heartbeat_s=tuning.get("heartbeat_s", 60),
        worker=int(tuning.get("worker", 0)))
    log_to_mlflow = bool(tuning.get("mlflow", True))
    space = model_tuning.get("space") or {}
    if tuning.get("enqueue_base", True) and not study.trials:
        start = tuning_lib.values_of(
            tuning_lib.merge_params(base, model_tuning.get("fixed") or {}), space)
        if start is None:
            logger.info("params:%s lies outside its search space; not enqueued as trial 0",
                        base.get("name", base["kind"]))
        else:
            study.enqueue_trial(start, user_attrs={"configured": True}, skip_if_exists=True)
    objective = tuning_lib.make_objective(
        base, space, x_train, y_train, x_val, y_val, n_classes=len(genres),
        seed=int(base.get("seed", seed)), metric=metric, fixed=model_tuning.get("fixed"),
        log_to_mlflow=log_to_mlflow)
    logger.info("Tuning study '%s' in %s: %s more trials%s (%d so far)", study.study_name,
                tuning_lib.redact(storage), tuning.get("n_trials"),
                f", at most {tuning['timeout_s']} s" if tuning.get("timeout_s") else "",
                len(study.trials))
    study.set_user_attr("storage", tuning_lib.redact(storage))
    study.set_user_attr("metric", metric)
    return tuning_lib.run_study(study, objective, tuning.get("n_trials"),
                                tuning.get("timeout_s"), log_to_mlflow)


def report_study(study: optuna.Study):
    """Best parameters (JSON), the trials table (CSV) and three plots of the study."""
    summary = tuning_lib.best_summary(study, study.user_attrs.get("storage", ""),
                                      study.user_attrs.get("metric", "val_accuracy"))
    logger.info("Study '%s': best %s %.4f (trial %d) %s", study.study_name, summary["metric"],
                summary["best_value"], summary["best_trial"], summary["search_values"])
    return (summary, tuning_lib.trials_table(study), *tuning_lib.study_figures(study))


def best_model_params(best_params: dict[str, Any]) -> dict[str, Any]:
    """The best trial's full parameter block, named ``<model>_tuned`` in reports."""
    params = copy.deepcopy(best_params["params"])
    params["name"] = f"{params.get('name', params['kind'])}_tuned"
    return params
