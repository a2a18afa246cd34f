"""The training template's nodes: a predefined split drives every model kind, augmentation with
degraded copies of training tracks, and a band-limited model read and evaluated on its chain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from music_genre.datasets import SpectrogramSet
from music_genre.demo import GENRES
from music_genre.models.inputs import augmented_training_set, fit_inputs
from music_genre.pipelines.data_processing.nodes import split_tracks
from music_genre.pipelines.training.nodes import evaluate_model, train_model
from tests.helpers import FILTERED


@pytest.mark.parametrize("kind", ["random_forest", pytest.param("keras_mlp", marks=pytest.mark.slow),
                                  pytest.param("keras_cnn", marks=pytest.mark.slow)])
def test_a_predefined_split_csv_drives_every_model(kind):
    rng = np.random.default_rng(1)
    ids = [f"{g}.{i:05d}" for g in GENRES[:4] for i in range(6)]
    genre = [i.split(".")[0] for i in ids]
    manifest = pd.DataFrame({"track_id": ids, "genre": genre, "status": "ok"})
    csv = pd.DataFrame({"track_id": [f"{i}.wav" for i in ids],
                        "split": (["train"] * 3 + ["val", "test", "test"]) * 4})
    split = split_tracks(manifest, csv, FILTERED, {"val": 0.2, "test": 0.2, "seed": 0})
    assert (split.set_index("track_id").loc[ids, "split"].to_numpy()
            == csv["split"].to_numpy()).all()
    centre = {g: rng.normal(size=8) * 3 for g in GENRES[:4]}
    if kind == "keras_cnn":
        data = np.stack([rng.random((8, 32)) * 0.1 + GENRES.index(g) / 10 for g in genre])
        model_input = SpectrogramSet(np.array(ids), data.astype(np.float16))
        params = {"kind": kind, "filters": [4], "dense_units": 8, "epochs": 1, "verbose": 0,
                  "batch_size": 4, "specaugment": {"enabled": False}}
    else:
        x = np.stack([centre[g] + rng.normal(size=8) * 0.1 for g in genre])
        model_input = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
        model_input.insert(0, "genre", genre)
        model_input.insert(0, "track_id", ids)
        params = {"kind": kind, "random_forest": {"n_estimators": 20, "n_jobs": 1},
                  "hidden_units": [16], "epochs": 30, "verbose": 0,
                  "optimizer": {"learning_rate": 0.05}, "early_stopping": {"enabled": False}}
    params["name"] = kind
    model, info = train_model(model_input, split, params, GENRES, 0)
    metrics, _, predictions, _, _ = evaluate_model(model, model_input, split, info, params,
                                                   GENRES)
    assert info["n_train"] == 12 and metrics["n_test"] == 8
    assert sorted(predictions["track_id"]) == sorted(csv.loc[csv["split"] == "test", "track_id"]
                                                     .str.replace(".wav", ""))
    if kind != "keras_cnn":  # well separated clusters: the feature models must get them right
        assert metrics["accuracy"] >= 0.75


def test_augmentation_learns_from_degraded_copies_of_training_tracks_only():
    ids = [f"{g}.{i:05d}" for g in GENRES[:2] for i in range(5)]
    genre = [i.split(".")[0] for i in ids]
    table = pd.DataFrame({"track_id": ids, "genre": genre, "a": np.arange(10.0),
                          "b": np.arange(10.0) * 2})
    # degraded rows carry recognisable values: 100 + track (mp3), 200 + track (resample_8k)
    degraded = pd.concat([table.assign(degradation=kind, a=table["a"] + off, b=-1.0)
                          for kind, off in (("mp3", 100), ("resample_8k", 200))])
    split = pd.DataFrame({"track_id": ids, "genre": genre,
                          "split": (["train"] * 3 + ["val", "test"]) * 2})
    train = split[split["split"] == "train"]["track_id"].to_numpy()
    y = np.array([GENRES.index(g) for g in split[split["split"] == "train"]["genre"]])
    params = {"name": "rf", "kind": "random_forest", "augment": ["mp3", "resample_8k"],
              "random_forest": {"n_estimators": 5, "n_jobs": 1}}
    x0 = table.set_index("track_id").loc[train, ["a", "b"]].to_numpy(np.float32)
    x, y_aug = augmented_training_set(x0, y, train, degraded, params, ["a", "b"])
    assert x.shape == (18, 2) and list(y_aug) == list(y) * 3
    positions = [ids.index(t) for t in train]
    assert sorted(x[:, 0]) == sorted([p + off for off in (0, 100, 200) for p in positions])
    # nothing of a validation or test track: 3, 4, 8, 9 (+100, +200) never appear
    assert not set(x[:, 0]) & {p + off for p in (3, 4, 8, 9) for off in (0, 100, 200)}
    model, info = train_model(table, split, params, GENRES, 0, degraded)
    assert info["n_train"] == 18
    assert train_model(table, split, {**params, "augment": []}, GENRES, 0)[1]["n_train"] == 6

    with pytest.raises(ValueError,
                       match="rf.augment needs the 'resample_16k'.*augmentation.degradations"):
        augmented_training_set(x0, y, train, degraded, {**params, "augment": ["resample_16k"]},
                               ["a", "b"])
    with pytest.raises(ValueError, match="augmentation.degradations"):
        train_model(table, split, params, GENRES, 0)  # no degraded table given
    with pytest.raises(ValueError, match="lowpass"):
        augmented_training_set(x0, y, train, degraded, params, None)  # a spectrogram model


def test_fit_on_train_val_adds_the_validation_tracks_but_never_a_test_track():
    ids = [f"{g}.{i:05d}" for g in GENRES[:2] for i in range(5)]
    genre = [i.split(".")[0] for i in ids]
    table = pd.DataFrame({"track_id": ids, "genre": genre, "a": np.arange(10.0),
                          "b": np.arange(10.0) * 2})
    split = pd.DataFrame({"track_id": ids, "genre": genre,
                          "split": (["train"] * 3 + ["val", "test"]) * 2})
    params = {"name": "rf", "kind": "random_forest", "fit_on": "train+val",
              "random_forest": {"n_estimators": 5, "n_jobs": 1}}
    x, y, x_val, y_val, _ = fit_inputs(table, split, params, GENRES)
    assert sorted(x[:, 0]) == [0, 1, 2, 3, 5, 6, 7, 8] and len(x_val) == len(y_val) == 0
    # tuning scores its trials on the validation tracks: they stay apart there
    x, _, x_val, _, _ = fit_inputs(table, split, params, GENRES, tuning=True)
    assert sorted(x[:, 0]) == [0, 1, 2, 5, 6, 7] and sorted(x_val[:, 0]) == [3, 8]
    model, info = train_model(table, split, params, GENRES, 0)
    assert info["n_train"] == 8 and info["fit_on"] == "train+val"
    metrics = evaluate_model(model, table, split, info, params, GENRES)[0]
    assert metrics["fit_on"] == "train+val" and metrics["n_test"] == 2
    assert train_model(table, split, {**params, "fit_on": "train"}, GENRES, 0)[1]["n_train"] == 6
    with pytest.raises(ValueError, match=r"params:rf.fit_on is 'all'"):
        train_model(table, split, {**params, "fit_on": "all"}, GENRES, 0)
    with pytest.raises(ValueError, match=r"params:mlp.fit_on is train\+val.*early-stops"):
        fit_inputs(table, split, {"name": "mlp", "kind": "keras_mlp", "fit_on": "train+val"},
                   GENRES)
    # auto: train+val for a forest, train for a model that early-stops
    assert len(fit_inputs(table, split, {**params, "fit_on": "auto"}, GENRES)[1]) == 8
    x, _, x_val, _, _ = fit_inputs(table, split, {"name": "mlp", "kind": "keras_mlp",
                                                  "fit_on": "auto"}, GENRES)
    assert len(x) == 6 and len(x_val) == 2


@pytest.mark.slow  # Keras training
def test_a_band_limited_model_reads_and_is_evaluated_on_its_chain_copy():
    ids = [f"{g}.{i:05d}" for g in GENRES[:2] for i in range(5)]
    genre = [i.split(".")[0] for i in ids]
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"track_id": ids, "genre": genre, "a": rng.normal(size=10),
                          "b": rng.normal(size=10)})
    low = table.assign(degradation="resample_8k", a=[0.0 if g == GENRES[0] else 1.0
                                                      for g in genre], b=0.0)
    degraded = pd.concat([low, table.assign(degradation="mp3")])
    split = pd.DataFrame({"track_id": ids, "genre": genre,
                          "split": (["train"] * 3 + ["val", "test"]) * 2})
    params = {"name": "rf_robust", "kind": "random_forest", "input_degradation": "resample_8k",
              "random_forest": {"n_estimators": 5, "n_jobs": 1}}
    model, info = train_model(table, split, params, GENRES, 0, degraded)
    assert info["input_spec"]["degradation"] == "resample_8k"  # what its bundle carries
    # trained on the chain copy: feature a alone separates the genres there
    assert model.named_steps["forest"].feature_importances_[0] == pytest.approx(1.0)
    metrics, _, predictions, _, _ = evaluate_model(model, table, split, info, params, GENRES,
                                                   degraded)
    assert metrics["accuracy"] == 1.0 and metrics["n_test"] == 2
    with pytest.raises(ValueError, match="'resample_16k'.*augmentation.degradations"):
        train_model(table, split, {**params, "input_degradation": "resample_16k"}, GENRES, 0,
                    degraded)
    # a Keras model's chain: in its bundle's contract (bundle_model) and the run's metrics
    mlp = {"name": "mlp", "kind": "keras_mlp", "input_degradation": "resample_8k",
           "hidden_units": [8], "epochs": 60, "verbose": 0, "batch_size": 2,
           "optimizer": {"learning_rate": 0.05}, "early_stopping": {"enabled": False}}
    model, info = train_model(table, split, mlp, GENRES, 0, degraded)
    metrics, *_ = evaluate_model(model, table, split, info, mlp, GENRES, degraded)
    assert metrics["input_spec"] == {"columns": ["a", "b"], "rich_segment_s": None,
                                     "degradation": "resample_8k"}
    assert metrics["accuracy"] == 1.0  # separable in the chain copy only
    with pytest.raises(ValueError, match="feature tables only"):
        train_model(SpectrogramSet(np.array(ids), np.zeros((10, 4, 8), np.float16)), split,
                    {**mlp, "kind": "keras_cnn"}, GENRES, 0, degraded)
