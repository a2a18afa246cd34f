"""Model builders: plain functions from a parameter dict to an untrained model.

The Kedro pipelines wire them; tests and the tuning pipelines call them directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def build_random_forest(params: dict[str, Any], seed: int):
    """StandardScaler → PCA → RandomForest as one sklearn Pipeline (one object to serve)."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rf = params.get("random_forest", {})
    steps = [("scale", StandardScaler())]
    if params.get("pca_components"):
        steps.append(("pca", PCA(n_components=int(params["pca_components"]), random_state=seed)))
    steps.append(("forest", RandomForestClassifier(
        n_estimators=int(rf.get("n_estimators", 200)),
        max_depth=rf.get("max_depth", 30),
        min_samples_split=int(rf.get("min_samples_split", 2)),
        max_features=rf.get("max_features", "sqrt"),
        class_weight=rf.get("class_weight", "balanced"),
        n_jobs=int(rf.get("n_jobs", -1)),
        random_state=seed,
    )))
    return Pipeline(steps)


def build_logistic_regression(params: dict[str, Any], seed: int):
    """StandardScaler → [PCA] → multinomial logistic regression; with ``n_patches`` (the
    ``transfer`` head on patch rows) fitted on every patch, a row's answer the mean of its
    patches' (:class:`music_genre.transfer.head.PatchAveragingClassifier`)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    lr = params.get("logistic_regression", {})
    steps = [("scale", StandardScaler())]
    if params.get("pca_components"):
        steps.append(("pca", PCA(n_components=int(params["pca_components"]), random_state=seed)))
    steps.append(("logreg", LogisticRegression(C=float(lr.get("C", 1.0)),
                                               max_iter=int(lr.get("max_iter", 2000)),
                                               random_state=seed)))
    if params.get("n_patches"):
        from music_genre.transfer.head import PatchAveragingClassifier

        prior = params.get("genre_prior") or {}
        return PatchAveragingClassifier(Pipeline(steps), int(params["n_patches"]),
                                        int(prior.get("columns") or 0),
                                        float(prior.get("weight", 1.0)))
    return Pipeline(steps)


def _optimizer(params: dict[str, Any]):
    import keras

    opt = params.get("optimizer", {})
    return keras.optimizers.AdamW(learning_rate=float(opt.get("learning_rate", 1e-3)),
                                  weight_decay=float(opt.get("weight_decay", 0.0)))


def _classifier(inputs, x, n_classes: int, params: dict[str, Any], name: str,
                soft_labels: bool = False):
    """The softmax head and compilation shared by the Keras models."""
    import keras

    # float32 softmax under a mixed-precision policy too (a float16 softmax loses small classes)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="genre",
                                 dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=name)
    # jit_compile: XLA for the training step (Keras' "auto" leaves it off on CPU-only machines);
    # benchmarks/cnn_throughput.py --jit measures it
    jit = params.get("jit_compile", "auto")
    # soft_labels: one-hot (mixed) label rows, as mixup gives them
    loss = "categorical_crossentropy" if soft_labels else "sparse_categorical_crossentropy"
    model.compile(optimizer=_optimizer(params), loss=loss,
                  metrics=["accuracy"], jit_compile=jit if jit is not None else "auto")
    return model


def build_mlp(params: dict[str, Any], n_features: int, n_classes: int,
              scaler_mean: np.ndarray | None = None, scaler_var: np.ndarray | None = None,
              pca_components: np.ndarray | None = None, pca_mean: np.ndarray | None = None):
    """Keras MLP. Standardisation and PCA are layers of the model (fitted on the training split),
    so the saved ``.keras`` file takes raw features: one object to serve.

    Hidden layers: ``params['hidden_units']`` (a list), each Dense → BatchNorm → ReLU → Dropout.
    """
    import keras

    inputs = keras.Input((n_features,), name="features")
    x = inputs
    if scaler_mean is not None:
        x = keras.layers.Normalization(mean=scaler_mean, variance=scaler_var, name="standardise")(x)
    if pca_components is not None:
        k = pca_components.shape[0]
        pca = keras.layers.Dense(k, trainable=False, name="pca")
        x = pca(x)
        pca.set_weights([pca_components.T.astype("float32"),
                         (-pca_mean @ pca_components.T).astype("float32")])
    for i, units in enumerate(params["hidden_units"]):
        x = keras.layers.Dense(int(units), name=f"dense_{i}")(x)
        if params.get("batch_norm", True):
            x = keras.layers.BatchNormalization(
                momentum=float(params.get("bn_momentum", 0.99)), name=f"bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu_{i}")(x)
        x = keras.layers.Dropout(float(params.get("dropout", 0.0)), name=f"dropout_{i}")(x)
    return _classifier(inputs, x, n_classes, params, "mlp")


def build_cnn(params: dict[str, Any], input_shape: tuple[int, int, int], n_classes: int,
              seed: int | None = None, soft_labels: bool = False):
    """Keras CNN on (n_mels, n_frames, 1) spectrograms.

    SpecAugment (training only) → [AveragePool(mel_pool × 1)] → per block: Conv2D(f, 3×3) →
    BatchNorm → ReLU → MaxPool(2) → Dropout(block_dropout); then GlobalAveragePooling → Dense →
    BatchNorm → ReLU → Dropout → softmax.
    """
    import keras

    from music_genre.models.specaugment import SpecAugment

    aug = params.get("specaugment", {})
    inputs = keras.Input(input_shape, name="spectrogram")
    x = inputs
    if aug.get("enabled", True):
        x = SpecAugment(p=aug.get("p", 0.5), time_mask=aug.get("time_mask", 20),
                        freq_mask=aug.get("freq_mask", 10), seed=seed, name="specaugment")(x)
    # mel_pool k > 1: average k adjacent mel bins first (128 → 128/k rows): every convolution
    # after it costs 1/k; the stored spectrogram and the service's input stay as they are
    mel_pool = int(params.get("mel_pool") or 1)
    if mel_pool > 1:
        x = keras.layers.AveragePooling2D((mel_pool, 1), name="mel_pool")(x)
    kernel = int(params.get("kernel_size", 3))
    dropout = float(params.get("dropout", 0.0))
    # Dropout inside the conv blocks feeds the next BatchNorm different statistics in training
    # than at inference ("variance shift"): on the 100-track sample the reference's 0.496 left
    # inference at chance while training accuracy reached 97 %. block_dropout (default: dropout,
    # the reference recipe) sets it apart from the head's dropout.
    block_dropout = float(params.get("block_dropout", dropout))
    # Keras' default 0.99 suits long runs; a few dozen steps (demo, tests) need a faster average
    bn_momentum = float(params.get("bn_momentum", 0.99))
    for i, filters in enumerate(params["filters"]):
        x = keras.layers.Conv2D(int(filters), kernel, padding="same", use_bias=False,
                                name=f"conv_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"conv_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"conv_relu_{i}")(x)
        x = keras.layers.MaxPooling2D(int(params.get("pool_size", 2)), name=f"pool_{i}")(x)
        if block_dropout > 0:
            x = keras.layers.Dropout(block_dropout, name=f"conv_dropout_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(int(params.get("dense_units", 512)), name="dense")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name="dense_bn")(x)
    x = keras.layers.Activation("relu", name="dense_relu")(x)
    x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
    return _classifier(inputs, x, n_classes, params, "cnn", soft_labels)
