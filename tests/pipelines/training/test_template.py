"""The train → evaluate template of every table and spectrogram model, through a real runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.datasets import SpectrogramSet
from music_genre.pipelines.training import model_pipeline


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
    pytest.param("mlp", {"kind": "keras_mlp", "pca_components": 5, "hidden_units": [8],
                         "epochs": 2, "verbose": 0, "batch_size": 4}, "features",
                 marks=pytest.mark.slow),  # Keras training
    pytest.param("cnn", {"kind": "keras_cnn", "filters": [4], "dense_units": 4, "epochs": 1,
                         "verbose": 0, "batch_size": 4}, "spectrograms",
                 marks=pytest.mark.slow),
])
def test_template_trains_and_evaluates_each_model_with_a_real_runner(name, params, source,
                                                                    tmp_path):
    from music_genre.bundle_dataset import ModelBundleDataset

    genres, table, spec, split = _tiny_data()
    catalog = DataCatalog({
        "features": MemoryDataset(table), "spectrograms": MemoryDataset(spec, copy_mode="assign"),
        "split": MemoryDataset(split), f"params:{name}": MemoryDataset({**params, "name": name}),
        "params:genres": MemoryDataset(genres), "params:seed": MemoryDataset(0),
        "params:extraction": MemoryDataset({"duration_s": 6.0}),
        f"{name}.trained_model": MemoryDataset(copy_mode="assign"),
        # the project's `{model}.model` dataset: evaluation reads the model back from disk
        f"{name}.model": ModelBundleDataset(filepath=str(tmp_path / f"{name}.bundle")),
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
    # the saved model is a bundle: its family and the run's extraction parameters and genres
    bundle = catalog.load(f"{name}.model")
    assert bundle.family == {"rf": "sklearn-table", "mlp": "keras-table",
                             "cnn": "keras-spectrogram"}[name]
    assert bundle.contract["extraction"]["duration_s"] == 6.0 and bundle.genres == genres
