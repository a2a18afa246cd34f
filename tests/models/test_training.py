"""Segment-level CNN training (music_genre.models.training): random windows per track for training,
window-averaged prediction; a seed fixes a model."""

from __future__ import annotations

import numpy as np
import pytest

from music_genre.datasets import SpectrogramSet
from music_genre.models import bundle, training

TINY_CNN = {"kind": "keras_cnn", "filters": [4], "dense_units": 8, "dropout": 0.0,
            "specaugment": {"enabled": False}, "batch_size": 8, "epochs": 1, "verbose": 0,
            "early_stopping": {"enabled": False}, "reduce_lr": {"enabled": False},
            "optimizer": {"learning_rate": 0.01}}


@pytest.fixture(scope="module")
def spec():
    rng = np.random.default_rng(0)
    data = rng.random((6, 8, 100)).astype(np.float16)
    return SpectrogramSet(np.array([f"t{i}" for i in range(6)]), data)


def _match_start(spec, track, window, x):
    """The start frame whose slice of ``track`` equals ``x`` (None if none does)."""
    for s in range(spec.data.shape[2] - window + 1):
        if np.array_equal(spec.data[track, :, s : s + window].astype(np.float32), x):
            return s
    return None


def test_window_starts_cover_the_track_to_its_last_frame():
    starts = training.window_starts(1292, 129, 64)
    assert starts[0] == 0 and starts[-1] == 1292 - 129
    assert np.all(np.diff(starts) <= 64)
    assert list(training.window_starts(100, 100, 10)) == [0]


def test_training_batches_are_random_windows_of_the_right_tracks(spec):
    idx = np.array([4, 1, 3])
    labels = np.array([0, 1, 2])
    batches = training.spectrogram_batches(spec, idx, labels, batch_size=4, shuffle=True, seed=3,
                                           window=20, crops_per_track=3)
    assert len(batches) == 3  # 9 windows in batches of 4
    seen, starts = [], []
    for i in range(len(batches)):
        x, y = batches[i]
        assert x.shape[1:] == (8, 20, 1)
        for j in range(len(x)):
            track = idx[list(labels).index(y[j])]
            s = _match_start(spec, track, 20, x[j, :, :, 0])
            assert s is not None  # every window is a real slice of its own track
            seen.append(int(y[j]))
            starts.append(s)
    assert sorted(seen) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(set(starts)) > 3  # random offsets, not one fixed crop
    first = batches.item_start.copy()
    batches.on_epoch_end()
    assert not np.array_equal(first, batches.item_start)  # new windows each epoch


def test_prediction_windows_and_lowpass_augmentation(spec):
    batches = training.spectrogram_batches(spec, np.array([2, 5]), None, batch_size=64,
                                           window=40)
    expected_starts = training.window_starts(100, 40, 20)
    assert list(batches.item_track) == [0] * len(expected_starts) + [1] * len(expected_starts)
    (x,) = batches[0]
    for j, (t, s) in enumerate(zip(batches.item_track, batches.item_start)):
        np.testing.assert_array_equal(x[j, :, :, 0], spec.data[[2, 5][t], :, s : s + 40])

    aug = training.spectrogram_batches(spec, np.arange(6), np.zeros(6, int), batch_size=6,
                                       shuffle=True, window=40, lowpass={"p": 1.0,
                                                                         "min_keep": 0.5})
    x, _ = aug[0]
    for j in range(len(x)):
        kept = np.flatnonzero(x[j, :, :, 0].max(axis=1) > 0)
        assert 4 <= len(kept) < 8 and list(kept) == list(range(len(kept)))  # top bands zeroed


def test_mixup_mixes_windows_and_their_labels_by_the_same_weight(spec):
    idx, labels = np.arange(6), np.array([0, 1, 2, 0, 1, 2])
    plain = training.spectrogram_batches(spec, idx, labels, batch_size=6, shuffle=True, seed=5,
                                         window=40, n_classes=3)
    mixed = training.spectrogram_batches(spec, idx, labels, batch_size=6, shuffle=True, seed=5,
                                         window=40, n_classes=3, mixup={"alpha": 0.4, "p": 1.0})
    x0, y0 = plain[0]  # same seed: the same windows before mixing
    x1, y1 = mixed[0]
    assert y0.shape == y1.shape == (6, 3)
    np.testing.assert_array_equal(y0, np.eye(3)[labels[plain.item_track[plain.positions[:6]]]])
    np.testing.assert_allclose(y1.sum(axis=1), 1.0, rtol=1e-6)  # still distributions
    assert not np.array_equal(x0, x1) and (y1.max(axis=1) < 1).any()
    for j in range(6):  # x1[j] = lam x0[j] + (1 - lam) x0[k], y1[j] the same mix of labels
        fits = []
        for k in range(6):
            d = (x0[j] - x0[k]).ravel()
            lam = 1.0 if k == j else float(d @ (x1[j] - x0[k]).ravel() / (d @ d))
            if np.allclose(x1[j], lam * x0[j] + (1 - lam) * x0[k], atol=1e-4) and \
                    np.allclose(y1[j], lam * y0[j] + (1 - lam) * y0[k], atol=1e-4):
                fits.append(k)
        assert fits, j
    # validation / prediction batches: never mixed
    val = training.spectrogram_batches(spec, idx, labels, batch_size=64, window=40,
                                       n_classes=3, mixup={"alpha": 0.4})
    assert set(np.unique(val[0][1])) == {0.0, 1.0}

@pytest.mark.slow  # Keras training
def test_segment_model_trains_on_windows_and_averages_them_per_track(spec):
    y = np.array([0, 1, 0, 1, 0, 1])
    params = {**TINY_CNN, "segment": {"frames": 25, "crops_per_track": 2}}
    model, info = training.fit(params, (spec, np.arange(4)), y[:4], (spec, np.arange(4, 6)),
                               y[4:], n_classes=2, seed=0)
    assert model.input_shape[1:] == (8, 25, 1) and info["epochs_run"] == 1
    proba = training.predict_proba(model, (spec, np.array([5, 0])), 2)
    # independent computation: every half-overlapping window through the model, then the mean
    starts = training.window_starts(100, 25, 12)
    for row, track in zip(proba, (5, 0)):
        wins = np.stack([spec.data[track, :, s : s + 25] for s in starts]).astype(np.float32)
        manual = model.predict(wins[..., None], verbose=0).mean(axis=0)
        np.testing.assert_allclose(row, manual, rtol=1e-5, atol=1e-6)
    # whole-track models are unchanged: one prediction per track
    whole, _ = training.fit({**TINY_CNN}, (spec, np.arange(4)), y[:4], (spec, np.arange(4, 6)),
                            y[4:], n_classes=2, seed=0)
    assert whole.input_shape[1:] == (8, 100, 1)
    assert training.predict_proba(whole, (spec, np.array([5, 0])), 2).shape == (2, 2)


@pytest.mark.slow  # Keras training
def test_service_averages_a_segment_cnn_over_windows_like_the_evaluation(spec):
    """The prediction service feeds a segment CNN the windows ``predict_proba`` cuts from the
    stored spectrograms, and a long upload is the mean over its 30 s (here 6 s) windows."""
    from music_genre import audio, inference

    params = audio.ExtractionParams(duration_s=6.0)
    rng = np.random.default_rng(1)
    sr = params.sample_rate
    signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(12 * sr) / sr)
              + 0.05 * rng.standard_normal(12 * sr)).astype(np.float32)
    batch = inference.spectrogram_batch(signal, params)  # two 6 s windows, float16 as stored
    assert batch.x.shape == (2, params.n_mels, params.n_frames)
    stored = SpectrogramSet(np.array(["a", "b"]), batch.x)
    y = np.array([0, 1])
    seg = {**TINY_CNN, "segment": {"frames": 40, "crops_per_track": 2}}
    model, _ = training.fit(seg, (stored, np.arange(2)), y, (stored, np.arange(2)), y,
                            n_classes=2, seed=0)
    assert model.input_shape[2] == 40 < params.n_frames
    expected = training.predict_proba(model, (stored, np.arange(2)), 2)  # the evaluation node
    np.testing.assert_allclose(
        training.predict_segments(model, batch.x.astype(np.float32)[..., None]), expected,
        rtol=1e-5, atol=1e-6)
    # served as its bundle says: the 6 s windows of this extraction, the genres a, b
    loaded = inference.LoadedModel("cnn", model, contract=bundle.contract(
        "cnn", "keras-spectrogram", ["a", "b"], params.as_dict()))
    pred = inference.predict_signal(signal, loaded)
    assert pred.n_windows == 2
    np.testing.assert_allclose(pred.window_probabilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(list(pred.probabilities.values()), expected.mean(axis=0),
                               rtol=1e-5, atol=1e-6)


def test_the_same_seed_gives_the_same_random_forest():
    y = np.repeat(np.arange(3), 6)
    x = (np.random.default_rng(0).standard_normal((18, 57)) + y[:, None] * 2.0).astype(np.float32)
    params = {"kind": "random_forest", "pca_components": 5,
              "random_forest": {"n_estimators": 15, "n_jobs": 1}}
    a, _ = training.fit(params, x, y, x, y, n_classes=3, seed=11)
    b, _ = training.fit(params, x, y, x, y, n_classes=3, seed=11)
    c, _ = training.fit(params, x, y, x, y, n_classes=3, seed=12)
    probe = x + np.random.default_rng(9).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    assert not np.array_equal(a.predict_proba(probe), c.predict_proba(probe))
