"""Per-track MusiCNN outputs, and the optional fine-tuning of the network's top.

:func:`track_entry` is what the embedding node caches per track: the mean 200-d embedding (the
``transfer`` model's input), the mean tags, and per 3 s patch the embeddings and the frozen
network's pooled 1506-d features.

:class:`FineTunedTop` (``kedro run --pipeline transfer_finetune``): MusiCNN's back-end
(BatchNorm 1506 → Dense 200 → BatchNorm), initialised from the checkpoint, with a new softmax
layer, trained on every patch of the training tracks from the cached pooled features (so the
frozen front end runs once per track, not once per epoch). A track's probabilities are the mean
over its patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from music_genre.transfer.embed import EmbedParams, musicnn_input


def _top_model(musicnn, n_classes: int, dropout: float, trainable_backend: bool):
    """MusiCNN's back-end on pooled patch features (1506) with a new softmax output."""
    import keras
    from keras import layers

    n_pool = int(musicnn.get_layer("pool_flat").output.shape[-1])
    x_in = keras.Input(shape=(n_pool,), name="pooled")
    x = x_in
    for name in ("pool_bn", "penultimate_dense", "penultimate_bn"):
        src = musicnn.get_layer(name)
        layer = src.__class__.from_config(src.get_config())
        x = layer(x)
        layer.set_weights(src.get_weights())
        layer.trainable = trainable_backend
        if name == "pool_bn":
            x = layers.Dropout(dropout, name="pool_dropout")(x)
    x = layers.Dropout(dropout, name="penultimate_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(x_in, out, name="musicnn_top")


@dataclass
class FineTunedTop:
    """The ``finetune`` head: MusiCNN's back-end re-trained on patches; a Keras model inside."""

    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    model: Any = None
    classes_: np.ndarray | None = None
    history: dict[str, list[float]] = field(default_factory=dict)

    def fit(self, pooled: Sequence[np.ndarray], y: Sequence[str], musicnn) -> FineTunedTop:
        import keras

        keras.utils.set_random_seed(self.seed)
        self.classes_ = np.array(sorted(set(map(str, y))))
        index = {c: i for i, c in enumerate(self.classes_)}
        X = np.concatenate([np.asarray(p, np.float32) for p in pooled])
        Y = np.concatenate([np.full(len(p), index[str(c)]) for p, c in zip(pooled, y, strict=True)])
        opt = self.options
        self.model = _top_model(
            musicnn, len(self.classes_), float(opt.get("dropout", 0.5)),
            bool(opt.get("train_backend", True)),
        )  # fmt: skip
        self.model.compile(
            optimizer=keras.optimizers.Adam(float(opt.get("learning_rate", 1e-3))),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        hist = self.model.fit(
            X, Y, epochs=int(opt.get("epochs", 30)), batch_size=int(opt.get("batch_size", 64)),
            shuffle=True, verbose=0,
        )  # fmt: skip
        self.history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        return self

    def predict_proba(self, pooled: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(
            [np.asarray(self.model.predict_on_batch(np.asarray(p, np.float32))).mean(axis=0)
             for p in pooled]
        )  # fmt: skip


def feature_model(musicnn):
    """The same network with the pooled 1506-d patch features as a third output."""
    import keras

    return keras.Model(
        musicnn.inputs, [*musicnn.outputs, musicnn.get_layer("pool_flat").output],
        name=f"{musicnn.name}_features",
    )  # fmt: skip


def track_entry(features_net, y_16k: np.ndarray, params: EmbedParams) -> dict[str, np.ndarray]:
    """Per-track MusiCNN outputs: mean ``embedding`` (200), mean ``tags`` (50), and per patch
    ``patch_embedding`` (n, 200) and ``patch_pooled`` (n, 1506, float16, for fine-tuning)."""
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
        "patch_pooled": pooled.astype(np.float16),
    }


__all__ = ["FineTunedTop", "feature_model", "track_entry"]
