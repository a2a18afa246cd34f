"""``kedro run --pipeline tune_rf`` on tiny data: tune (3 trials) → report → train the best
forest, through a real runner."""

from __future__ import annotations

import pytest

from music_genre.pipelines.tuning import single_tuning_pipeline
from tests.tuning_data import run_tuning


@pytest.mark.slow  # an Optuna study with its report plots, then the best forest
def test_tune_then_train_the_best_forest(tmp_path, features_and_split, tuning_conf,
                                         model_params):
    features, split = features_and_split
    rf = {**model_params["rf"], "pca_components": None,
          "random_forest": {**model_params["rf"]["random_forest"], "n_estimators": 20}}
    space = {**tuning_conf["rf"]["space"], "pca_components": {"choices": [None, 4]},
             "random_forest.n_estimators": {"low": 10, "high": 30, "step": 10}}
    conf = {**tuning_conf, "n_trials": 3, "storage": f"sqlite:///{tmp_path}/studies.db",
            "sampler": {"seed": 0, "n_startup_trials": 3}, "mlflow": False,
            "rf": {**tuning_conf["rf"], "space": space,
                   "fixed": {"random_forest": {"n_jobs": 1}}}}
    catalog = run_tuning(single_tuning_pipeline("rf"), "rf", features, split, rf, conf, tmp_path)

    trials = catalog.load("rf.trials")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    assert trials["value"].between(0, 1).all()
    # trial 0 is the configured block itself (the untuned baseline)
    assert trials.iloc[0]["params_random_forest.n_estimators"] == 20
    best = catalog.load("rf.best_params")
    assert best["best_value"] == trials["value"].max() and best["metric"] == "val_accuracy"
    n_best = best["params"]["random_forest"]["n_estimators"]
    assert n_best in (10, 20, 30) and best["params"]["random_forest"]["n_jobs"] == 1

    # train_best: that block trained on the training split and tested like any model
    model = catalog.load("rf_tuned.model").model  # the forest in its bundle
    assert model.named_steps["forest"].n_estimators == n_best
    metrics = catalog.load("rf_tuned.metrics")
    assert metrics["model"] == "rf_tuned" and metrics["n_test"] == (split["split"] == "test").sum()
    assert metrics["accuracy"] >= 0.75  # four well separated synthetic genres
