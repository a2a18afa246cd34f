"""Per-track MusiCNN outputs, and the optional fine-tuning of the network's top.

:func:`track_entry` is what the embedding node caches per track: the mean 200-d embedding (the
``transfer`` model's input), the mean tags, and per 3 s patch the embeddings and the frozen
network's pooled 1506-d features.

Fine-tuning (``kedro run --pipeline transfer_finetune``): MusiCNN's back-end
(BatchNorm 1506 → Dense 200 → BatchNorm), initialised from the checkpoint, with a new softmax
layer, trained on every patch of the training tracks from the cached pooled features (so the
frozen front end runs once per track, not once per epoch). A track's probabilities are the mean
over its patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from music_genre.transfer.embed import EmbedParams, musicnn_input


def build_finetune_model(musicnn, n_classes: int, params: dict[str, Any]):
    """(full, top): ``top`` is MusiCNN's back-end (pooled 1506 → BN → Dense 200 → BN), initialised
    from the pretrained weights, + a new softmax layer; ``full`` is the frozen front end followed
    by ``top``, per patch: (B, T, 96) → (B, n_classes). Training fits ``top`` on cached pooled
    features; ``full`` (sharing its layers) is the servable artifact."""
    import keras
    from keras import layers

    dropout = float(params.get("dropout", 0.5))
    train_backend = bool(params.get("train_backend", True))
    n_pool = int(musicnn.get_layer("pool_flat").output.shape[-1])
    x_in = keras.Input(shape=(n_pool,), name="pooled")
    x = x_in
    for name in ("pool_bn", "penultimate_dense", "penultimate_bn"):
        src = musicnn.get_layer(name)
        layer = src.__class__.from_config(src.get_config())
        x = layer(x)
        layer.set_weights(src.get_weights())
        layer.trainable = train_backend
        if name in ("pool_bn", "penultimate_bn"):
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    top = keras.Model(x_in, out, name="musicnn_top")

    front = keras.Model(musicnn.inputs, musicnn.get_layer("pool_flat").output,
                        name="musicnn_front")  # fmt: skip
    front.trainable = False
    patches = keras.Input(shape=(None, int(musicnn.inputs[0].shape[-1])), name="logmel")
    full = keras.Model(patches, top(front(patches)), name="musicnn_finetuned")
    return full, top


def fit_top(top, pooled: Sequence[np.ndarray], y: np.ndarray, val_pooled: Sequence[np.ndarray],
            y_val: np.ndarray, params: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Train ``top`` on every patch (label = its track's genre); early stopping on validation."""
    import keras

    keras.utils.set_random_seed(seed)

    def stack(tracks, labels):
        X = np.concatenate([np.asarray(p, np.float32) for p in tracks])
        Y = np.concatenate([np.full(len(p), c) for p, c in zip(tracks, labels, strict=True)])
        return X, Y

    X, Y = stack(pooled, y)
    top.compile(optimizer=keras.optimizers.Adam(float(params.get("learning_rate", 1e-3))),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    fit_args: dict[str, Any] = {}
    callbacks = []
    if len(val_pooled):
        fit_args["validation_data"] = stack(val_pooled, y_val)
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=int(params.get("patience", 8)),
            restore_best_weights=True))  # fmt: skip
    history = top.fit(X, Y, epochs=int(params.get("epochs", 60)),
                      batch_size=int(params.get("batch_size", 64)), shuffle=True,
                      callbacks=callbacks, verbose=int(params.get("verbose", 0)), **fit_args)  # fmt: skip
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def predict_tracks(top, pooled: Sequence[np.ndarray]) -> np.ndarray:
    """Track probabilities: the mean of ``top``'s patch probabilities."""
    return np.stack([np.asarray(top.predict_on_batch(np.asarray(p, np.float32))).mean(axis=0)
                     for p in pooled])  # fmt: skip


def feature_model(musicnn):
    """The same network with the pooled 1506-d patch features as a third output."""
    import keras

    return keras.Model(
        musicnn.inputs, [*musicnn.outputs, musicnn.get_layer("pool_flat").output],
        name=f"{musicnn.name}_features",
    )  # fmt: skip


def track_entry(features_net, y_16k: np.ndarray, params: EmbedParams) -> dict[str, np.ndarray]:
    """Per-track MusiCNN outputs: mean ``embedding`` (200), mean ``tags`` (50), and per patch
    ``patch_embedding`` (n, 200), ``patch_tags`` (n, 50) and ``patch_pooled`` (n, 1506, float16, for fine-tuning)."""
    x = musicnn_input(y_16k, params)
    tags, embs, pooled = [], [], []
    for start in range(0, len(x), params.batch_size):
        t, e, p = features_net.predict_on_batch(x[start : start + params.batch_size])
        tags.append(np.asarray(t))
        embs.append(np.asarray(e))
        pooled.append(np.asarray(p))
    tags, embs, pooled = np.concatenate(tags), np.concatenate(embs), np.concatenate(pooled)
    return {
        "embedding": embs.mean(axis=0, dtype=np.float64).astype(np.float32),
        "tags": tags.mean(axis=0, dtype=np.float64).astype(np.float32),
        "patch_embedding": embs.astype(np.float32),
        "patch_tags": tags.astype(np.float32),
        "patch_pooled": pooled.astype(np.float16),
    }


__all__ = ["build_finetune_model", "feature_model", "fit_top", "predict_tracks", "track_entry"]
