"""Model families: how each kind of model is fitted, asked for probabilities, fed and saved.

One adapter per family replaces the ``kind`` branches that training, evaluation, tuning and the
service each had:

=====================  ==================================  ===========  ===========
family                 kinds (``params:<model>.kind``)     input        saved as
=====================  ==================================  ===========  ===========
``sklearn-table``      random_forest, logistic_regression  table        joblib
``keras-table``        keras_mlp                           table        .keras
``keras-spectrogram``  keras_cnn                           spectrogram  .keras
``embedding-head``     any table kind (the transfer head)  embedding    joblib
=====================  ==================================  ===========  ===========

``input`` names the service's input builder (:data:`music_genre.inference.INPUT_BUILDERS`):
the same audio functions the data processing / embedding nodes call. A model's family is fixed
when it is trained (:func:`family_for`: its roster input + its kind) and recorded in its bundle
(:mod:`music_genre.models.bundle`), so serving never looks at the model's name or today's conf.

No Kedro here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _clamp_pca(params: dict[str, Any], train_input) -> dict[str, Any]:
    if params.get("pca_components") and not isinstance(train_input, tuple):
        limit = min(train_input.shape)
        if int(params["pca_components"]) > limit:
            logger.warning("%s: pca_components=%s is more than the %d the training data allows "
                           "(min of tracks and features); using %d",
                           params.get("name", params["kind"]), params["pca_components"], limit,
                           limit)
            return {**params, "pca_components": limit}
    return params


def _sklearn_proba(model, x, n_classes: int) -> np.ndarray:
    proba = model.predict_proba(x)
    full = np.zeros((len(proba), n_classes))
    full[:, np.asarray(model.classes_, dtype=int)] = proba  # a class absent from training
    return full


@dataclass(frozen=True)
class Family:
    """The adapter of one model family (subclasses below)."""

    name: str
    #: the service's input builder: ``table`` / ``spectrogram`` / ``embedding``
    input: str
    #: the ``kind`` values it trains
    kinds: tuple[str, ...]
    #: ``joblib`` or ``keras`` (how :mod:`music_genre.models.bundle` writes the model)
    save_format: str

    @property
    def keras(self) -> bool:
        """Whether it trains Keras models (epoch callbacks, ``clear_session`` between fits)."""
        return self.save_format == "keras"

    def fit(self, params: dict[str, Any], train_input, y_train: np.ndarray, val_input,
            y_val: np.ndarray, n_classes: int, seed: int, callbacks=()
            ) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def predict_proba(self, model, model_input, n_classes: int,
                      batch_size: int = 32) -> np.ndarray:
        """Probabilities (n, n_classes) of a training-side input (a table's float32 rows, or
        ``(SpectrogramSet, indices)``)."""
        raise NotImplementedError

    def predict_batch(self, model, x: np.ndarray, n_classes: int) -> np.ndarray:
        """Probabilities of in-memory model inputs, one row per analysed window (serving)."""
        return self.predict_proba(model, x, n_classes)


class _SklearnTable(Family):
    def fit(self, params, train_input, y_train, val_input, y_val, n_classes, seed, callbacks=()):
        from music_genre.models import builders

        params = _clamp_pca(params, train_input)
        build = {"random_forest": builders.build_random_forest,
                 "logistic_regression": builders.build_logistic_regression}[params["kind"]]
        model = build(params, seed)
        model.fit(train_input, y_train)
        info: dict[str, Any] = {}
        if "pca" in model.named_steps:
            info["pca_explained_variance"] = float(
                model.named_steps["pca"].explained_variance_ratio_.sum())
        return model, info

    def predict_proba(self, model, model_input, n_classes, batch_size=32):
        return _sklearn_proba(model, model_input, n_classes)


def _keras_fit(model, params, fit_args, callbacks) -> dict[str, Any]:
    from music_genre.models.training import _callbacks

    info: dict[str, Any] = {"n_parameters": int(model.count_params())}
    history = model.fit(epochs=int(params.get("epochs", 50)),
                        callbacks=_callbacks(params, callbacks),
                        verbose=int(params.get("verbose", 2)), **fit_args)
    info["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    info["epochs_run"] = len(history.epoch)
    return info


class _KerasTable(Family):
    def fit(self, params, train_input, y_train, val_input, y_val, n_classes, seed, callbacks=()):
        import keras
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        from music_genre import distributed
        from music_genre.models import builders

        params = _clamp_pca(params, train_input)
        keras.utils.set_random_seed(seed)
        scaler = StandardScaler().fit(train_input)
        pca_args, info = {}, {}
        if params.get("pca_components"):
            pca = PCA(n_components=int(params["pca_components"]), random_state=seed)
            pca.fit(scaler.transform(train_input))
            pca_args = {"pca_components": pca.components_, "pca_mean": pca.mean_}
            info["pca_explained_variance"] = float(pca.explained_variance_ratio_.sum())
        with distributed.accelerated(params.get("accelerator")):  # strategy, precision
            model = builders.build_mlp(params, train_input.shape[1], n_classes,
                                       scaler.mean_, scaler.var_, **pca_args)
        info.update(_keras_fit(model, params, {
            "x": train_input, "y": y_train, "validation_data": (val_input, y_val),
            "batch_size": int(params.get("batch_size", 32)), "shuffle": True}, callbacks))
        return model, info

    def predict_proba(self, model, model_input, n_classes, batch_size=32):
        return np.asarray(model.predict(model_input, batch_size=batch_size, verbose=0))

    def predict_batch(self, model, x, n_classes):
        # one compiled call, without predict()'s per-call data pipeline
        return np.asarray(model.predict_on_batch(x))


class _KerasSpectrogram(Family):
    def fit(self, params, train_input, y_train, val_input, y_val, n_classes, seed, callbacks=()):
        import keras

        from music_genre import distributed
        from music_genre.models import builders
        from music_genre.models.training import segment_settings, spectrogram_batches

        keras.utils.set_random_seed(seed)
        batch_size = int(params.get("batch_size", 32))
        spec, train_idx = train_input
        _, val_idx = val_input
        seg = segment_settings(params)
        window = int(seg["frames"]) if seg["frames"] else None
        n_mels, n_frames = spec.data.shape[1:]
        if window and window >= n_frames:
            window = None  # windows as long as the track: whole-track training
        mixup = dict(params.get("mixup") or {})
        soft = float(mixup.get("alpha") or 0) > 0  # mixed labels: one-hot, categorical loss
        with distributed.accelerated(params.get("accelerator")):  # strategy, precision
            model = builders.build_cnn(params, (n_mels, window or n_frames, 1), n_classes,
                                       seed=seed, soft_labels=soft)
        # segment training: random windows per track per epoch; validation on every
        # non-overlapping window of the validation tracks (for early stopping only)
        fit_args = {
            "x": spectrogram_batches(spec, train_idx, y_train, batch_size, True, seed,
                                     window=window, crops_per_track=seg["crops_per_track"],
                                     lowpass=params.get("lowpass"),
                                     n_classes=n_classes if soft else None, mixup=mixup),
            "validation_data": spectrogram_batches(spec, val_idx, y_val, batch_size, False,
                                                   seed, window=window, hop=window,
                                                   n_classes=n_classes if soft else None),
        }
        return model, _keras_fit(model, params, fit_args, callbacks)

    def predict_proba(self, model, model_input, n_classes, batch_size=32):
        from music_genre.models.training import spectrogram_batches

        spec, idx = model_input
        window = model.input_shape[2]
        if window is None or window >= spec.data.shape[2]:
            return np.asarray(model.predict(
                spectrogram_batches(spec, idx, None, batch_size, False, 0), verbose=0))
        # a segment model: average its windows' probabilities (half-overlapping) per track
        batches = spectrogram_batches(spec, idx, None, batch_size, False, 0, window=window)
        proba = np.asarray(model.predict(batches, verbose=0))
        sums = np.zeros((len(idx), proba.shape[1]))
        np.add.at(sums, batches.item_track, proba)
        return sums / np.bincount(batches.item_track, minlength=len(idx))[:, None]

    def predict_batch(self, model, x, n_classes):
        from music_genre.models.training import predict_segments

        return predict_segments(model, x)


class _EmbeddingHead(Family):
    """A table model (sklearn or Keras, by ``kind``) on the pretrained networks' features."""

    def _table(self, kind_or_model) -> Family:
        if isinstance(kind_or_model, str):
            return by_kind(kind_or_model)
        return SKLEARN_TABLE if hasattr(kind_or_model, "predict_proba") else KERAS_TABLE

    def fit(self, params, train_input, y_train, val_input, y_val, n_classes, seed, callbacks=()):
        return self._table(params["kind"]).fit(params, train_input, y_train, val_input, y_val,
                                               n_classes, seed, callbacks)

    def predict_proba(self, model, model_input, n_classes, batch_size=32):
        return self._table(model).predict_proba(model, model_input, n_classes, batch_size)

    def predict_batch(self, model, x, n_classes):
        return self._table(model).predict_batch(model, x, n_classes)


SKLEARN_TABLE = _SklearnTable("sklearn-table", "table",
                              ("random_forest", "logistic_regression"), "joblib")
KERAS_TABLE = _KerasTable("keras-table", "table", ("keras_mlp",), "keras")
KERAS_SPECTROGRAM = _KerasSpectrogram("keras-spectrogram", "spectrogram", ("keras_cnn",),
                                      "keras")
# joblib pickles a scikit-learn head and a Keras one alike (as the transfer head always was)
EMBEDDING_HEAD = _EmbeddingHead("embedding-head", "embedding",
                                SKLEARN_TABLE.kinds + KERAS_TABLE.kinds, "joblib")

FAMILIES: dict[str, Family] = {f.name: f for f in
                               (SKLEARN_TABLE, KERAS_TABLE, KERAS_SPECTROGRAM, EMBEDDING_HEAD)}


def by_kind(kind: str) -> Family:
    """The family that trains ``kind`` on its own input (a table or spectrograms)."""
    for family in (SKLEARN_TABLE, KERAS_TABLE, KERAS_SPECTROGRAM):
        if kind in family.kinds:
            return family
    known = sorted(k for f in (SKLEARN_TABLE, KERAS_TABLE, KERAS_SPECTROGRAM) for k in f.kinds)
    raise ValueError(f"unknown model kind '{kind}'; choose one of {known}")


def family_for(input_kind: str, kind: str) -> Family:
    """The family of a roster model: its input (``music_genre.roster.ModelSpec.family``:
    table / spectrogram / embedding) and its ``kind``; an error names a mismatch."""
    family = EMBEDDING_HEAD if input_kind == "embedding" else by_kind(kind)
    if kind not in family.kinds or (input_kind != "embedding" and family.input != input_kind):
        raise ValueError(f"a '{kind}' model cannot read {input_kind} input; "
                         f"{family.name} reads {family.input}")
    return family


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family '{name}'; known: {sorted(FAMILIES)}") from None


def fit(params: dict[str, Any], train_input, y_train: np.ndarray, val_input, y_val: np.ndarray,
        n_classes: int, seed: int, callbacks=(), family: Family | None = None
        ) -> tuple[Any, dict[str, Any]]:
    """Train with ``family`` (default: the family of ``params['kind']``); the model and a
    history dict (curves, timings)."""
    family = family or by_kind(params["kind"])
    start = time.perf_counter()
    model, info = family.fit(params, train_input, y_train, val_input, y_val, n_classes, seed,
                             callbacks)
    info = {"kind": params["kind"], "family": family.name, **info,
            "train_seconds": time.perf_counter() - start, "n_train": int(len(y_train))}
    logger.info("Trained %s (%s) on %d tracks in %.1f s", params["kind"], family.name,
                len(y_train), info["train_seconds"])
    return model, info


__all__ = ["EMBEDDING_HEAD", "FAMILIES", "Family", "KERAS_SPECTROGRAM", "KERAS_TABLE",
           "SKLEARN_TABLE", "by_kind", "family_for", "fit", "get"]
