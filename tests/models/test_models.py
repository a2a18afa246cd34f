"""Model builders, SpecAugment, metrics and the train → evaluate template."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from music_genre.datasets import SpectrogramSet
from music_genre.models import builders
from music_genre.models.specaugment import SpecAugment
from music_genre.pipelines.training import model_pipeline
from music_genre.models.reports import classification_metrics


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


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 10, 200)
    proba = rng.random((200, 10))
    proba[np.arange(200), y_true] += rng.random(200)  # better than chance
    y_pred = proba.argmax(axis=1)
    genres = [f"g{i}" for i in range(10)]
    m = classification_metrics(y_true, proba, genres)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        assert m[f"precision_{avg}"] == pytest.approx(
            precision_score(y_true, y_pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(recall_score(y_true, y_pred, average=avg))
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y_true, y_pred, average=avg))
    per_genre_f1 = f1_score(y_true, y_pred, average=None)
    assert [m["per_genre"][g]["f1"] for g in genres] == pytest.approx(per_genre_f1)
    assert np.array(m["confusion_matrix"]).sum() == 200


def _tiny_data(n_per_class=6, n_classes=3):
    rng = np.random.default_rng(0)
    genres = [f"g{i}" for i in range(n_classes)]
    ids, labels = [], []
    for c in range(n_classes):
        for i in range(n_per_class):
            ids.append(f"{genres[c]}.{i:05d}")
            labels.append(genres[c])
    y = np.array([genres.index(g) for g in labels])
    feats = rng.standard_normal((len(ids), 57)) + y[:, None] * 2.0  # separable classes
    table = pd.DataFrame(feats, columns=[f"f{i}" for i in range(57)])
    table.insert(0, "genre", labels)
    table.insert(0, "track_id", ids)
    spec = rng.random((len(ids), 16, 24)).astype(np.float16)
    spec[:, :4] += (y[:, None, None] / 2).astype(np.float16)
    split = pd.DataFrame({"track_id": ids, "genre": labels,
                          "split": (["train"] * 4 + ["val", "test"]) * n_classes})
    return genres, table, SpectrogramSet(np.array(ids), spec), split


@pytest.mark.parametrize("name,params,source", [
    ("rf", {"kind": "random_forest", "pca_components": 5,
            "random_forest": {"n_estimators": 20, "n_jobs": 1}}, "features"),
    ("mlp", {"kind": "keras_mlp", "pca_components": 5, "hidden_units": [8], "epochs": 2,
             "verbose": 0, "batch_size": 4}, "features"),
    ("cnn", {"kind": "keras_cnn", "filters": [4], "dense_units": 4, "epochs": 1, "verbose": 0,
             "batch_size": 4}, "spectrograms"),
])
def test_template_trains_and_evaluates_each_model_with_a_real_runner(name, params, source):
    genres, table, spec, split = _tiny_data()
    catalog = DataCatalog({
        "features": MemoryDataset(table), "spectrograms": MemoryDataset(spec, copy_mode="assign"),
        "split": MemoryDataset(split), f"params:{name}": MemoryDataset({**params, "name": name}),
        "params:genres": MemoryDataset(genres), "params:seed": MemoryDataset(0),
        f"{name}.model": MemoryDataset(copy_mode="assign"),
        # feature models may ask for degraded copies (augment, input_degradation); none here
        "degraded_features": MemoryDataset(pd.DataFrame(columns=["track_id", "genre",
                                                                 "degradation"])),
    })
    outputs = SequentialRunner().run(model_pipeline(name, source), catalog)
    metrics = catalog.load(f"{name}.metrics")
    assert metrics["model"] == name and metrics["n_test"] == 3 and metrics["n_train"] == 12
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["train_seconds"] > 0
    if name == "rf":
        assert metrics["accuracy"] == 1.0  # separable features
        assert 0 < metrics["pca_explained_variance"] <= 1
    predictions = catalog.load(f"{name}.predictions")
    assert list(predictions.columns[:3]) == ["track_id", "genre", "predicted"]
    np.testing.assert_allclose(predictions[genres].sum(axis=1), 1.0, rtol=1e-4)
    assert f"{name}.confusion_matrix" in outputs and f"{name}.training_curves" in outputs


def test_the_same_seed_gives_the_same_random_forest():
    from music_genre.models import training

    _, table, _, split = _tiny_data()
    x = table.iloc[:, 2:].to_numpy(np.float32)
    y = np.repeat(np.arange(3), 6)
    params = {"kind": "random_forest", "pca_components": 5,
              "random_forest": {"n_estimators": 15, "n_jobs": 1}}
    a, _ = training.fit(params, x, y, x, y, n_classes=3, seed=11)
    b, _ = training.fit(params, x, y, x, y, n_classes=3, seed=11)
    c, _ = training.fit(params, x, y, x, y, n_classes=3, seed=12)
    probe = x + np.random.default_rng(9).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    assert not np.array_equal(a.predict_proba(probe), c.predict_proba(probe))
