"""Fitting and predicting for every model kind, behind one interface.

``kind`` (from the model's parameters) selects the family:

* ``random_forest`` / ``logistic_regression``: sklearn pipelines on a feature table;
* ``keras_mlp``: Keras MLP on a feature table (standardisation + PCA baked into the model);
* ``keras_cnn``: Keras CNN on a :class:`~music_genre.datasets.SpectrogramSet`, streamed in
  batches from the memory-mapped float16 store (never every spectrogram in float32 at once).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from music_genre.datasets import SpectrogramSet

logger = logging.getLogger(__name__)

SKLEARN_KINDS = {"random_forest", "logistic_regression"}
KERAS_KINDS = {"keras_mlp", "keras_cnn"}


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("track_id", "genre")]


def select(model_input, track_ids: np.ndarray):
    """The model input rows of ``track_ids``: an array for tables, (set, indices) for spectra."""
    track_ids = np.asarray(track_ids, dtype=str)
    if isinstance(model_input, SpectrogramSet):
        return model_input, model_input.index_of(track_ids)
    table = model_input.set_index(model_input["track_id"].astype(str))
    missing = [t for t in track_ids if t not in table.index]
    if missing:
        raise KeyError(f"model input has no rows for tracks {missing[:5]} ({len(missing)})")
    return table.loc[track_ids, feature_columns(model_input)].to_numpy(np.float32)


def spectrogram_batches(spec: SpectrogramSet, indices, labels=None, batch_size: int = 32,
                        shuffle: bool = False, seed: int = 0):
    """A Keras ``PyDataset`` of (spectrogram, label) batches read from the float16 store.

    Only one batch is cast to float32 at a time; shuffling permutes positions per epoch.
    """
    import keras

    indices = np.asarray(indices)

    class SpectrogramBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.positions = np.arange(len(indices))
            if shuffle:
                self.positions = self.rng.permutation(self.positions)

        def __len__(self):
            return math.ceil(len(indices) / batch_size)

        def __getitem__(self, i):
            pos = self.positions[i * batch_size : (i + 1) * batch_size]
            idx = indices[pos]
            order = np.argsort(idx)  # sorted reads are sequential on disk
            x = np.empty((len(idx), *spec.data.shape[1:], 1), np.float32)
            x[order, ..., 0] = spec.data[idx[order]]
            return (x,) if labels is None else (x, labels[pos])

        def on_epoch_end(self):
            if shuffle:
                self.positions = self.rng.permutation(self.positions)

    return SpectrogramBatches()


def _callbacks(params: dict[str, Any], extra=()):
    import keras

    cbs = []
    es = params.get("early_stopping", {})
    if es.get("enabled", True):
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=es.get("monitor", "val_loss"), patience=int(es.get("patience", 10)),
            restore_best_weights=bool(es.get("restore_best_weights", True))))
    rl = params.get("reduce_lr", {})
    if rl.get("enabled", True):
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl.get("monitor", "val_loss"), factor=float(rl.get("factor", 0.5)),
            patience=int(rl.get("patience", 5)), min_lr=float(rl.get("min_lr", 1e-6))))
    return cbs + list(extra)


def fit(params: dict[str, Any], train_input, y_train: np.ndarray, val_input, y_val: np.ndarray,
        n_classes: int, seed: int, callbacks=()) -> tuple[Any, dict[str, Any]]:
    """Train a model of ``params['kind']``; returns it with a history dict (curves, timings)."""
    from music_genre.models import builders

    kind = params["kind"]
    info: dict[str, Any] = {"kind": kind}
    start = time.perf_counter()
    if kind in SKLEARN_KINDS:
        build = {"random_forest": builders.build_random_forest,
                 "logistic_regression": builders.build_logistic_regression}[kind]
        model = build(params, seed)
        model.fit(train_input, y_train)
        if "pca" in model.named_steps:
            info["pca_explained_variance"] = float(
                model.named_steps["pca"].explained_variance_ratio_.sum())
    elif kind in KERAS_KINDS:
        import keras

        from music_genre import distributed

        keras.utils.set_random_seed(seed)
        batch_size = int(params.get("batch_size", 32))
        if kind == "keras_mlp":
            from sklearn.decomposition import PCA
            from sklearn.preprocessing import StandardScaler

            scaler = StandardScaler().fit(train_input)
            pca_args = {}
            if params.get("pca_components"):
                pca = PCA(n_components=int(params["pca_components"]), random_state=seed)
                pca.fit(scaler.transform(train_input))
                pca_args = {"pca_components": pca.components_, "pca_mean": pca.mean_}
                info["pca_explained_variance"] = float(pca.explained_variance_ratio_.sum())
            with distributed.accelerated(params.get("accelerator")):  # strategy, precision
                model = builders.build_mlp(params, train_input.shape[1], n_classes,
                                           scaler.mean_, scaler.var_, **pca_args)
            fit_args = {"x": train_input, "y": y_train, "validation_data": (val_input, y_val),
                        "batch_size": batch_size, "shuffle": True}
        else:
            spec, train_idx = train_input
            _, val_idx = val_input
            with distributed.accelerated(params.get("accelerator")):  # strategy, precision
                model = builders.build_cnn(params, (*spec.data.shape[1:], 1), n_classes,
                                           seed=seed)
            fit_args = {
                "x": spectrogram_batches(spec, train_idx, y_train, batch_size, True, seed),
                "validation_data": spectrogram_batches(spec, val_idx, y_val, batch_size,
                                                        False, seed),
            }
        info["n_parameters"] = int(model.count_params())
        history = model.fit(epochs=int(params.get("epochs", 50)),
                            callbacks=_callbacks(params, callbacks),
                            verbose=int(params.get("verbose", 2)), **fit_args)
        info["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        info["epochs_run"] = len(history.epoch)
    else:
        raise ValueError(f"unknown model kind '{kind}'; choose one of "
                         f"{sorted(SKLEARN_KINDS | KERAS_KINDS)}")
    info["train_seconds"] = time.perf_counter() - start
    info["n_train"] = int(len(y_train))
    logger.info("Trained %s on %d tracks in %.1f s", kind, len(y_train), info["train_seconds"])
    return model, info


def predict_proba(model, model_input, n_classes: int, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (n, n_classes) for any model kind."""
    if isinstance(model_input, tuple):  # spectrograms: (set, indices)
        spec, idx = model_input
        return np.asarray(model.predict(
            spectrogram_batches(spec, idx, None, batch_size, False, 0), verbose=0))
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(model_input)
        full = np.zeros((len(proba), n_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba  # a class absent from training
        return full
    return np.asarray(model.predict(model_input, batch_size=batch_size, verbose=0))
