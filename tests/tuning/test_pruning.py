"""Keras trials report each epoch; the MedianPruner stops a trial that is clearly worse."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from music_genre import tuning
from music_genre.datasets import SpectrogramSet
from music_genre.models import training
from music_genre.models.inputs import labels as _labels
from tests.tuning_data import GENRES

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 6
MLP = {"name": "mlp", "kind": "keras_mlp", "pca_components": None, "hidden_units": [32],
       "batch_norm": False, "dropout": 0.0, "batch_size": 16, "epochs": EPOCHS,
       "optimizer": {"learning_rate": 1e-2, "weight_decay": 0.0},
       "early_stopping": {"enabled": False}, "reduce_lr": {"enabled": False}, "verbose": 0}


def _inputs(features, split):
    (tr, y_tr), (va, y_va) = _labels(split, "train", GENRES), _labels(split, "val", GENRES)
    return training.select(features, tr), y_tr, training.select(features, va), y_va


@pytest.mark.slow  # Keras trials
def test_a_bad_trial_is_pruned(features_and_split):
    x_tr, y_tr, x_va, y_va = _inputs(*features_and_split)
    space = {"optimizer.learning_rate": {"low": 1.0e-7, "high": 1.0e-1, "log": True}}
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(
        n_startup_trials=1, n_warmup_steps=1))
    study.enqueue_trial({"optimizer.learning_rate": 3e-2})  # learns in a few epochs
    study.enqueue_trial({"optimizer.learning_rate": 1e-7})  # barely moves from its start
    objective = tuning.make_objective(MLP, space, x_tr, y_tr, x_va, y_va, len(GENRES), seed=0,
                                      metric="val_loss", log_to_mlflow=False)
    study.optimize(objective, n_trials=2)

    good, bad = study.trials
    assert good.state == optuna.trial.TrialState.COMPLETE
    assert sorted(good.intermediate_values) == list(range(EPOCHS))  # one report per epoch
    assert bad.state == optuna.trial.TrialState.PRUNED
    # pruned right after the warm-up epoch, when its loss was above the good trial's
    assert sorted(bad.intermediate_values) == [0, 1]
    assert bad.intermediate_values[1] > good.intermediate_values[1]
    assert bad.user_attrs["epochs_run"] == 2
    # the objective's value is the validation loss of the returned model
    assert good.value == good.user_attrs["val_loss"] < np.log(len(GENRES))


@pytest.mark.slow  # Keras trials
def test_cnn_trial_on_tiny_spectrograms(features_and_split):
    """The CNN path: conv blocks and SpecAugment strengths come from the space."""
    _, split = features_and_split
    rng = np.random.default_rng(0)
    genre_of = {g: i for i, g in enumerate(GENRES)}
    ids = split["track_id"].to_numpy()
    data = rng.normal(0, 1, (len(ids), 16, 32)).astype(np.float16)
    for i, g in enumerate(split["genre"]):
        data[i, 4 * genre_of[g]: 4 * genre_of[g] + 4] += 2  # a band per genre
    spec = SpectrogramSet(ids, data)
    (tr, y_tr), (va, y_va) = _labels(split, "train", GENRES), _labels(split, "val", GENRES)
    base = {"name": "cnn", "kind": "keras_cnn", "kernel_size": 3, "pool_size": 2,
            "early_stopping": {"enabled": False}, "reduce_lr": {"enabled": False}}
    space = {"filters": {"length": {"low": 1, "high": 2}, "item": {"choices": [4, 8]}},
             "dense_units": {"choices": [8]}, "dropout": {"low": 0.0, "high": 0.2},
             "specaugment.p": {"low": 0.0, "high": 1.0},
             "specaugment.time_mask": {"low": 1, "high": 4},
             "specaugment.freq_mask": {"low": 1, "high": 2}}
    study = optuna.create_study(direction="maximize")
    objective = tuning.make_objective(
        base, space, training.select(spec, tr), y_tr, training.select(spec, va), y_va,
        len(GENRES), seed=0, fixed={"epochs": 2, "batch_size": 8, "verbose": 0},
        log_to_mlflow=False)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and 0 <= trial.value <= 1
    params = trial.user_attrs["params"]
    assert len(params["filters"]) == trial.params["filters.length"]
    assert params["specaugment"]["time_mask"] == trial.params["specaugment.time_mask"]
    assert sorted(trial.intermediate_values) == [0, 1]
