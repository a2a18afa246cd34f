"""Scaling out: extraction on a Dask cluster equals the local run; tf.distribute strategies and
mixed precision build and train a model (on the CPU here; the same code paths run on GPUs)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from music_genre import distributed
from music_genre.datasets import (
    AudioFolderDataset,
    OptionalCSVDataset,
    SpectrogramDataset,
    SpectrogramSet,
    TrackCacheDataset,
)
from music_genre.demo import write_demo_collection
from music_genre.pipelines.data_processing import create_pipeline
from tests.helpers import FILTERED, key_memo_datasets

GENRES = ["blues", "classical", "metal"]
# short clips keep the test fast; the extraction length must match them (3 s minimum)
EXTRACTION = {"duration_s": 4.0}


def _run_data_processing(raw: Path, out: Path, execution: dict) -> DataCatalog:
    """The data-processing pipeline with its real datasets, written under ``out``."""
    catalog = DataCatalog(datasets={
        "raw_audio": AudioFolderDataset(path=str(raw)),
        "predefined_split": OptionalCSVDataset(filepath=str(out / "none.csv")),
        "filtered_split_lists": MemoryDataset(FILTERED),
        "track_cache_previous": TrackCacheDataset(path=str(out / "track_cache")),
        **key_memo_datasets(out),
        "track_cache": TrackCacheDataset(path=str(out / "track_cache")),
        "manifest": CSVDataset(filepath=str(out / "manifest.csv")),
        "features": ParquetDataset(filepath=str(out / "features.parquet")),
        "spectrograms": SpectrogramDataset(filepath=str(out / "spectrograms")),
        "split": CSVDataset(filepath=str(out / "split.csv")),
        "params:genres": MemoryDataset(GENRES),
        "params:extraction": MemoryDataset(EXTRACTION),
        "params:execution": MemoryDataset({"progress": False, **execution}),
        "params:rich_features": MemoryDataset({"segment_s": 3.0}),
        "params:augmentation": MemoryDataset({"degradations": []}),
        "params:split": MemoryDataset({"val": 0.25, "test": 0.25, "seed": 0}),
    })  # fmt: skip
    # the extraction part of data processing (the pipeline may grow other branches)
    pipeline = create_pipeline().to_outputs("manifest", "features", "spectrograms", "split")
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.mark.slow  # Dask cluster
def test_dask_local_cluster_equals_the_local_run(tmp_path, caplog):
    raw = tmp_path / "raw"
    write_demo_collection(raw, n_per_genre=2, duration_s=4.0, genres=GENRES, seed=3)
    # single machine, in this process (joblib workers would run the same function again)
    local = _run_data_processing(raw, tmp_path / "local", {"n_jobs": 1})
    dask_conf = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
    with caplog.at_level(logging.INFO, logger="music_genre.distributed"):
        on_dask = _run_data_processing(raw, tmp_path / "dask",
                                       {"scheduler": "dask", "dask": dask_conf})
    assert "LocalCluster with 2 worker(s)" in caplog.text  # it really ran on the cluster

    f_local, f_dask = local.load("features"), on_dask.load("features")
    assert f_local.shape == (6, 2 + 57)  # the broken file is excluded on both paths
    pd.testing.assert_frame_equal(f_local, f_dask, check_exact=True)
    s_local, s_dask = local.load("spectrograms"), on_dask.load("spectrograms")
    assert s_local.data.shape == (6, 128, 1 + int(4.0 * 22050) // 512)
    assert np.array_equal(s_local.track_ids, s_dask.track_ids)
    assert np.array_equal(np.asarray(s_local.data), np.asarray(s_dask.data))
    pd.testing.assert_frame_equal(local.load("manifest"), on_dask.load("manifest"))
    pd.testing.assert_frame_equal(local.load("split"), on_dask.load("split"))


@pytest.mark.slow  # Dask cluster
def test_dask_results_come_back_in_order_and_config_errors_name_the_key():
    out = list(distributed.map_on_dask(pow, [3, 1, 2, 5], {"n_workers": 1, "processes": False},
                                       exp=2))
    assert out == [9, 1, 4, 25]
    with pytest.raises(ValueError, match="execution.scheduler"):
        distributed.scheduler_of({"scheduler": "spark"})
    with pytest.raises(ConnectionError, match="execution.dask.address"):
        with distributed.dask_client({"address": "tcp://127.0.0.1:9", "timeout": "1s"}):
            pass


# --------------------------------------------------------------------------------------------
# Training: strategies and mixed precision (CPU here; see README "Scaling out" for GPUs)
# --------------------------------------------------------------------------------------------

TINY_CNN = {"kind": "keras_cnn", "filters": [4], "dense_units": 8, "dropout": 0.0,
            "batch_size": 4, "epochs": 1, "verbose": 0,
            "specaugment": {"enabled": True, "time_mask": 4, "freq_mask": 2},
            "early_stopping": {"enabled": False}, "reduce_lr": {"enabled": False}}


def _tiny_spectrograms(n=12, n_classes=3):
    y = np.arange(n) % n_classes
    data = np.random.default_rng(0).random((n, 16, 24)).astype(np.float16)
    return SpectrogramSet(np.array([f"t{i}" for i in range(n)]), data), y


def _fit_tiny(kind, accelerator):
    from music_genre.models import training

    spec, y = _tiny_spectrograms()
    if kind == "keras_cnn":
        params = {**TINY_CNN, "accelerator": accelerator}
        train, val = (spec, np.arange(8)), (spec, np.arange(8, 12))
    else:
        params = {"kind": "keras_mlp", "hidden_units": [8], "batch_size": 4, "epochs": 1,
                  "verbose": 0, "early_stopping": {"enabled": False},
                  "reduce_lr": {"enabled": False}, "accelerator": accelerator}
        x = np.asarray(spec.data, np.float32).reshape(len(y), -1)[:, :20]
        train, val = x[:8], x[8:]
    model, info = training.fit(params, train, y[:8], val, y[8:], n_classes=3, seed=0)
    proba = training.predict_proba(model, val, 3)
    return model, info, proba


@pytest.mark.slow  # Keras training
@pytest.mark.parametrize("precision", ["off", "mixed_bfloat16"])
def test_mirrored_strategy_on_the_cpu_trains_the_cnn(precision):
    import keras
    import tensorflow as tf

    model, info, proba = _fit_tiny("keras_cnn", {"strategy": "mirrored", "devices": ["/cpu:0"],
                                                 "mixed_precision": precision})
    assert isinstance(model.distribute_strategy, tf.distribute.MirroredStrategy)
    assert model.distribute_strategy.num_replicas_in_sync == 1
    assert info["epochs_run"] == 1 and np.isfinite(info["history"]["loss"]).all()
    compute = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    assert model.get_layer("conv_0").compute_dtype == compute
    assert model.get_layer("conv_0").variable_dtype == "float32"  # master weights stay float32
    assert model.output.dtype == "float32"  # softmax in float32 whatever the policy
    assert proba.dtype == np.float32 and proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert keras.config.dtype_policy().name == "float32"  # the policy did not leak


@pytest.mark.slow  # Keras training
def test_mixed_precision_mlp_and_the_policy_choices():
    import keras

    model, info, proba = _fit_tiny("keras_mlp", {"mixed_precision": "mixed_float16"})
    assert model.get_layer("dense_0").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # float16 needs it
    assert model.output.dtype == "float32" and np.isfinite(info["history"]["loss"]).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-3)
    assert keras.config.dtype_policy().name == "float32"

    # no GPU here: `auto` keeps float32 and the strategy stays TensorFlow's default
    assert distributed.gpus() == []
    assert distributed.precision_policy_name("auto") == "float32"
    assert distributed.precision_policy_name(False) == "float32"  # YAML `off`
    assert type(distributed.make_strategy("auto")).__name__ == "_DefaultDistributionStrategy"
    with pytest.raises(ValueError, match="accelerator.strategy"):
        distributed.make_strategy("horovod")
    with pytest.raises(ValueError, match="keras-team/keras#20585"):
        distributed.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="accelerator.mixed_precision"):
        distributed.precision_policy_name("float8")
