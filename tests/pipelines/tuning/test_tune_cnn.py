"""``kedro run --pipeline tune_cnn`` on tiny spectrograms: tune (2 trials of 2 epochs, conv blocks
and SpecAugment from the space) → report → train the best CNN, through a real runner."""

from __future__ import annotations

import pytest

from music_genre.pipelines.tuning import single_tuning_pipeline
from tests.tuning_data import run_tuning, tiny_spectrograms

pytestmark = pytest.mark.slow  # trains Keras CNNs


def test_tune_then_train_the_best_cnn(tmp_path, features_and_split, tuning_conf, model_params):
    _, split = features_and_split
    cnn = {**model_params["cnn"], "filters": [4], "dense_units": 8, "batch_size": 8,
           "segment": {"frames": None}, "early_stopping": {"enabled": False},
           "reduce_lr": {"enabled": False}, "verbose": 0}
    space = {"filters": {"length": {"low": 1, "high": 2}, "item": {"choices": [4, 8]}},
             "dense_units": {"choices": [8]}, "specaugment.p": {"low": 0.0, "high": 1.0}}
    conf = {**tuning_conf, "n_trials": 2, "storage": f"sqlite:///{tmp_path}/studies.db",
            "sampler": {"seed": 0, "n_startup_trials": 2}, "mlflow": False,
            "enqueue_base": False,
            "cnn": {**tuning_conf["cnn"], "space": space, "fixed": {"epochs": 2, "verbose": 0}}}
    catalog = run_tuning(single_tuning_pipeline("cnn"), "cnn", tiny_spectrograms(split), split,
                         cnn, conf, tmp_path)

    trials = catalog.load("cnn.trials")
    assert len(trials) == 2 and set(trials["state"]) == {"COMPLETE"}
    assert (trials["user_attrs_epochs_run"] == 2).all()
    best = catalog.load("cnn.best_params")
    assert best["params"]["kind"] == "keras_cnn" and best["params"]["epochs"] == 2
    assert len(best["params"]["filters"]) == best["search_values"]["filters.length"]
    metrics = catalog.load("cnn_tuned.metrics")
    assert metrics["model"] == "cnn_tuned" and metrics["epochs_run"] == 2
    assert metrics["n_test"] == (split["split"] == "test").sum()
    # the trained network has the best trial's conv blocks
    model = catalog.load("cnn_tuned.model").model  # the network in its bundle
    import keras

    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == best["params"]["filters"]
