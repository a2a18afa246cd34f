"""Model builders and SpecAugment (music_genre.models.builders, .specaugment)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from music_genre.models import builders
from music_genre.models.specaugment import SpecAugment


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("hidden", [[1024, 512, 256], [64], [32, 16, 8, 4]])
def test_mlp_follows_its_parameters(hidden):
    rng = np.random.default_rng(0)
    comps = np.linalg.qr(rng.standard_normal((57, 30)))[0].T  # 30 orthonormal components
    model = builders.build_mlp({"hidden_units": hidden, "dropout": 0.5}, 57, 10,
                               np.zeros(57), np.ones(57), comps, np.zeros(57))
    widths = [30, *hidden]
    expected = sum(a * b + b + 2 * b for a, b in zip(widths[:-1], widths[1:])) + hidden[-1] * 10 + 10
    assert _trainable(model) == expected  # the PCA layer is frozen
    out = model(np.ones((4, 57), np.float32), training=False)
    assert out.shape == (4, 10)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)


def test_mlp_pca_layer_equals_sklearn_pca():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(1).standard_normal((200, 57)).astype(np.float32) * 5 + 3
    scaler = StandardScaler().fit(x)
    pca = PCA(n_components=30).fit(scaler.transform(x))
    model = builders.build_mlp({"hidden_units": [8]}, 57, 10, scaler.mean_, scaler.var_,
                               pca.components_, pca.mean_)
    projected = keras.Model(model.input, model.get_layer("pca").output)(x)
    np.testing.assert_allclose(np.asarray(projected), pca.transform(scaler.transform(x)),
                               atol=1e-3)


@pytest.mark.parametrize("filters", [[32, 64, 128, 256], [8, 16]])
def test_cnn_follows_its_parameters(filters):
    params = {"filters": filters, "dense_units": 32, "dropout": 0.5}
    model = builders.build_cnn(params, (128, 1292, 1), 10)
    chans = [1, *filters]
    expected = sum(9 * a * b + 2 * b for a, b in zip(chans[:-1], chans[1:]))
    expected += filters[-1] * 32 + 32 + 2 * 32 + 32 * 10 + 10
    assert _trainable(model) == expected
    assert model.input_shape == (None, 128, 1292, 1) and model.output_shape == (None, 10)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == len(filters)


def test_cnn_mel_pool_averages_mel_bins_before_the_convolutions():
    params = {"filters": [4], "dense_units": 4, "mel_pool": 2,
              "specaugment": {"enabled": False}}
    model = builders.build_cnn(params, (128, 129, 1), 10)
    assert model.input_shape == (None, 128, 129, 1)  # the stored spectrogram, unchanged
    assert model.get_layer("conv_0").input.shape[1:3] == (64, 129)
    x = np.random.default_rng(0).random((2, 128, 129, 1)).astype(np.float32)
    pooled = keras.Model(model.input, model.get_layer("mel_pool").output)(x)
    np.testing.assert_allclose(np.asarray(pooled), (x[:, 0::2] + x[:, 1::2]) / 2, atol=1e-6)
    no_pool = builders.build_cnn({**params, "mel_pool": 1}, (128, 129, 1), 10)
    assert "mel_pool" not in [layer.name for layer in no_pool.layers]
    assert no_pool.get_layer("conv_0").input.shape[1:3] == (128, 129)

def test_specaugment_masks_stay_within_limits_and_are_off_at_inference():
    layer = SpecAugment(p=1.0, time_mask=20, freq_mask=10, seed=3)
    x = np.ones((64, 128, 300, 1), np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))[..., 0] == 0.0
    for example in masked:
        rows = np.flatnonzero(example.all(axis=1))  # masked mel bins span every frame
        cols = np.flatnonzero(example.all(axis=0))  # masked frames span every bin
        assert len(rows) <= 10 and len(cols) <= 20
        if len(rows):
            assert rows.max() - rows.min() + 1 == len(rows)  # one contiguous band
        if len(cols):
            assert cols.max() - cols.min() + 1 == len(cols)
    assert masked.any(axis=(1, 2)).mean() > 0.8  # p = 1: almost every example masked
    never = np.asarray(SpecAugment(p=0.0)(x, training=True))
    np.testing.assert_array_equal(never, x)


def test_cnn_with_specaugment_survives_a_keras_round_trip(tmp_path):
    model = builders.build_cnn({"filters": [4], "dense_units": 4}, (16, 32, 1), 10, seed=1)
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).random((2, 16, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert isinstance(loaded.get_layer("specaugment"), SpecAugment)
