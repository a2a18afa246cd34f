"""Training-side helpers shared by every model family: spectrogram batches, callbacks, and
``fit`` / ``predict_proba`` entry points that hand over to the family adapters of
:mod:`music_genre.models.families` (``kind`` → sklearn-table, keras-table, keras-spectrogram).

Spectrogram models (:class:`~music_genre.models.inputs.SpectrogramSet`) stream batches from the
memory-mapped float16 store (never every spectrogram in float32 at once).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

# select / feature_columns: re-exported (training.select is what tuning and CV call)
from music_genre.models.inputs import SpectrogramSet, feature_columns, select  # noqa: F401

logger = logging.getLogger(__name__)


def window_starts(n_frames: int, window: int, hop: int) -> np.ndarray:
    """Start frames of ``window``-wide windows every ``hop`` frames, the last one flush with the
    end, so every frame of the track is seen (the service's windows cover a long file the same way).
    """
    if window >= n_frames:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_frames - window + 1, max(1, hop))
    if starts[-1] != n_frames - window:
        starts = np.append(starts, n_frames - window)
    return starts.astype(np.int64)


def spectrogram_batches(spec: SpectrogramSet, indices, labels=None, batch_size: int = 32,
                        shuffle: bool = False, seed: int = 0, window: int | None = None,
                        crops_per_track: int = 1, hop: int | None = None,
                        lowpass: dict[str, Any] | None = None, n_classes: int | None = None,
                        mixup: dict[str, Any] | None = None):
    """A Keras ``PyDataset`` of (spectrogram, label) batches read from the float16 store.

    Only one batch is cast to float32 at a time; shuffling permutes positions per epoch.

    Segment-level training (``window`` frames, e.g. 129 ≈ 3 s): with ``shuffle`` every track gives
    ``crops_per_track`` windows at random offsets, new ones each epoch; without it every track is
    cut into windows every ``hop`` frames (default ``window // 2``) and ``item_track`` maps each
    window to its track's position, so predictions can be averaged per track.

    ``lowpass`` (training only, ``{p, min_keep}``): with probability ``p`` a window loses its top
    mel bands (a random fraction of the bins from ``min_keep`` up is kept), as a 16 kHz or 8 kHz
    recording or an MP3 has no energy there; the normalised floor is 0.

    ``n_classes`` given: labels are one-hot rows (for a categorical loss). ``mixup`` (training
    only, ``{alpha, p}``, needs ``n_classes``): with probability ``p`` a window becomes
    ``lam * x + (1 - lam) * x'`` with another window ``x'`` of the batch and
    ``lam ~ Beta(alpha, alpha)``, its label mixed the same way.
    """
    import keras

    indices = np.asarray(indices)
    n_frames = spec.data.shape[2]
    win = int(window) if window and int(window) < n_frames else None
    lowpass = lowpass or {}

    class SpectrogramBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            if win is None:
                self.item_track = np.arange(len(indices))
                self.item_start = np.zeros(len(indices), np.int64)
            elif shuffle:
                self.item_track = np.repeat(np.arange(len(indices)), max(1, int(crops_per_track)))
                self.item_start = np.zeros(len(self.item_track), np.int64)
            else:
                starts = window_starts(n_frames, win, int(hop or max(1, win // 2)))
                self.item_track = np.repeat(np.arange(len(indices)), len(starts))
                self.item_start = np.tile(starts, len(indices))
            self.positions = np.arange(len(self.item_track))
            self.on_epoch_end()

        def __len__(self):
            return math.ceil(len(self.item_track) / batch_size)

        def __getitem__(self, i):
            pos = self.positions[i * batch_size : (i + 1) * batch_size]
            track = self.item_track[pos]
            idx = indices[track]
            order = np.argsort(idx, kind="stable")  # sorted reads are sequential on disk
            width = win or n_frames
            x = np.empty((len(idx), spec.data.shape[1], width, 1), np.float32)
            for j in order:
                s0 = self.item_start[pos[j]]
                x[j, :, :, 0] = spec.data[idx[j], :, s0 : s0 + width]
            if shuffle and lowpass.get("p", 0) > 0:
                n_mels = x.shape[1]
                hit = self.rng.random(len(x)) < float(lowpass["p"])
                keep = self.rng.integers(int(float(lowpass.get("min_keep", 0.6)) * n_mels),
                                         n_mels, size=len(x))
                for j in np.flatnonzero(hit):
                    x[j, keep[j]:, :, 0] = 0.0
            if labels is None:
                return (x,)
            y = labels[track]
            if n_classes:
                y = np.eye(int(n_classes), dtype=np.float32)[y]
                alpha = float((mixup or {}).get("alpha", 0.0))
                if shuffle and alpha > 0 and len(x) > 1:
                    hit = self.rng.random(len(x)) < float(mixup.get("p", 1.0))
                    lam = np.where(hit, self.rng.beta(alpha, alpha, len(x)), 1.0)
                    partner = self.rng.permutation(len(x))
                    lam_x = lam.astype(np.float32)[:, None, None, None]
                    x = lam_x * x + (1 - lam_x) * x[partner]
                    y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
                    y = y.astype(np.float32)
            return x, y

        def on_epoch_end(self):
            if shuffle:
                if win is not None:
                    self.item_start = self.rng.integers(0, n_frames - win + 1,
                                                        size=len(self.item_track))
                self.positions = self.rng.permutation(len(self.item_track))

    return SpectrogramBatches()


def segment_settings(params: dict[str, Any]) -> dict[str, Any]:
    """``params['segment']`` with defaults; ``frames`` null or 0 means whole-track training."""
    seg = dict(params.get("segment") or {})
    seg.setdefault("frames", None)
    seg.setdefault("crops_per_track", 8)
    return seg


def float32_after_training():
    """A Keras callback: when training ends, every layer of a model trained in mixed bfloat16
    (``accelerator.mixed_precision: bf16_if_supported``) is switched to float32 (its weights are
    float32 already), so the model is evaluated, saved and served in float32 on any machine."""
    import keras

    class Float32AfterTraining(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            for layer in self.model._flatten_layers(include_self=True):
                if layer.dtype_policy.name != "float32":
                    layer.dtype_policy = "float32"
            # traced in the training policy: traced again on next use
            self.model.train_function = self.model.test_function = None
            self.model.predict_function = None

    return Float32AfterTraining()


def _callbacks(params: dict[str, Any], extra=()):
    import keras

    cbs = []
    if (params.get("accelerator") or {}).get("mixed_precision") == "bf16_if_supported":
        cbs.append(float32_after_training())
    es = params.get("early_stopping", {})
    if es.get("enabled", True):
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=es.get("monitor", "val_loss"), patience=int(es.get("patience", 10)),
            restore_best_weights=bool(es.get("restore_best_weights", True)),
            # BatchNorm warm-up: a CNN's validation loss can rise for its first epochs while it
            # learns (measured on the 100-track sample: epochs 2-6), so stopping may start later
            start_from_epoch=int(es.get("start_from_epoch", 0))))
    rl = params.get("reduce_lr", {})
    if rl.get("enabled", True):
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl.get("monitor", "val_loss"), factor=float(rl.get("factor", 0.5)),
            patience=int(rl.get("patience", 5)), min_lr=float(rl.get("min_lr", 1e-6))))
    return cbs + list(extra)


def fit(params: dict[str, Any], train_input, y_train: np.ndarray, val_input, y_val: np.ndarray,
        n_classes: int, seed: int, callbacks=()) -> tuple[Any, dict[str, Any]]:
    """Train a model of ``params['kind']`` with its family's adapter
    (:func:`music_genre.models.families.fit`); returns it with a history dict."""
    from music_genre.models import families

    return families.fit(params, train_input, y_train, val_input, y_val, n_classes, seed,
                        callbacks)


def predict_segments(model, x: np.ndarray, hop: int | None = None) -> np.ndarray:
    """Probabilities of in-memory spectrograms ``x`` (n, n_mels, n_frames, 1) for any CNN: a
    segment model (input narrower than ``n_frames``) sees every half-overlapping window of each
    spectrogram (:func:`window_starts`, as :func:`predict_proba` cuts the stored ones) and each
    spectrogram gets the mean of its windows' probabilities; a whole-track model sees ``x``."""
    window = model.input_shape[2]
    n_frames = x.shape[2]
    if window is None or window >= n_frames:
        return np.asarray(model.predict_on_batch(x))
    starts = window_starts(n_frames, int(window), int(hop or max(1, window // 2)))
    crops = np.stack([x[:, :, s : s + window] for s in starts], axis=1)  # (n, windows, ...)
    proba = np.asarray(model.predict_on_batch(crops.reshape(-1, *crops.shape[2:])))
    return proba.reshape(len(x), len(starts), -1).mean(axis=1)


def predict_proba(model, model_input, n_classes: int, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (n, n_classes) for any model, by its family's adapter: a
    spectrogram input ``(set, indices)``, a scikit-learn model, or a Keras table model."""
    from music_genre.models import families

    if isinstance(model_input, tuple):  # spectrograms: (set, indices)
        family = families.KERAS_SPECTROGRAM
    elif hasattr(model, "predict_proba"):
        family = families.SKLEARN_TABLE
    else:
        family = families.KERAS_TABLE
    return family.predict_proba(model, model_input, n_classes, batch_size)
