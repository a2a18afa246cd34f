"""The `transfer` pipeline on the synthetic demo collection: embed (cached) → train → evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.pickle import PickleDataset
from kedro_datasets.tensorflow import TensorFlowModelDataset

from music_genre.datasets import AudioFolderDataset, TrackCacheDataset
from music_genre.demo import GENRES, write_demo_collection
from music_genre.pipelines.data_processing.nodes import probe_tracks, split_tracks
from music_genre.pipelines.transfer import create_pipeline
from music_genre.pipelines.transfer.nodes import EMBEDDING_COLUMNS, embed_tracks
from tests.helpers import FILTERED

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, msd_prefix):
    root = tmp_path_factory.mktemp("demo")
    write_demo_collection(root / "raw", n_per_genre=4, duration_s=9.0, seed=7)
    manifest = probe_tracks(AudioFolderDataset(path=str(root / "raw")).load(), GENRES)
    split = split_tracks(manifest, pd.DataFrame(), FILTERED, {"val": 0.25, "test": 0.25, "seed": 0})
    params = yaml.safe_load((PROJECT / "conf/base/parameters_transfer.yml").read_text())
    return root, manifest, split, params


def _catalog(root, manifest, split, params, transfer_overrides=None, out="out",
             musicnn_overrides=None):
    transfer = {**params["transfer"], **(transfer_overrides or {})}
    musicnn = {**params["musicnn"], **(musicnn_overrides or {})}
    cache = str(root / "musicnn_cache")
    o = root / out
    return DataCatalog(datasets={
        # persisted like conf/base/catalog_transfer.yml, so the tests can read them back
        "musicnn_keys": CSVDataset(filepath=str(o / "keys.csv")),
        "musicnn_embeddings": ParquetDataset(filepath=str(o / "emb.parquet")),
        "musicnn_features": ParquetDataset(filepath=str(o / "features.parquet")),
        "musicnn_tags": ParquetDataset(filepath=str(o / "tags.parquet")),
        "musicnn_network": TensorFlowModelDataset(filepath=str(o / "musicnn.keras")),
        "transfer.model": PickleDataset(filepath=str(o / "transfer.pkl"), backend="joblib"),
        "transfer.metrics": JSONDataset(filepath=str(o / "metrics.json")),
        "transfer.predictions": CSVDataset(filepath=str(o / "predictions.csv")),
        "manifest": MemoryDataset(manifest), "split": MemoryDataset(split),
        "musicnn_cache_previous": TrackCacheDataset(path=cache),
        "musicnn_cache": TrackCacheDataset(path=cache),
        "params:musicnn": MemoryDataset(musicnn),
        "params:execution": MemoryDataset({"progress": False}),
        "params:transfer": MemoryDataset(transfer),
        "params:genres": MemoryDataset(GENRES), "params:seed": MemoryDataset(42),
    })  # fmt: skip


@pytest.fixture(scope="module")
def trained(demo):
    """The transfer pipeline run once on the demo collection with the conf's parameters."""
    root, manifest, split, params = demo
    catalog = _catalog(root, manifest, split, params)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_pipeline_on_demo_data(demo, trained):
    root, manifest, split, params = demo
    assert (manifest["status"] == "excluded").sum() == 1  # the demo's deliberately broken file
    catalog = trained

    emb = catalog.load("musicnn_embeddings")
    assert emb.shape == (40, 2 + 200) and list(emb.columns[2:]) == EMBEDDING_COLUMNS
    assert np.isfinite(emb[EMBEDDING_COLUMNS].to_numpy()).all()
    tags = catalog.load("musicnn_tags")
    assert tags.shape == (40, 2 + 50) and tags.iloc[:, 2:].to_numpy().max() < 1

    metrics = catalog.load("transfer.metrics")
    assert metrics["model"] == "transfer" and metrics["n_test"] == 10
    # synthetic classes are easy for pretrained features: far above chance (0.1)
    assert metrics["accuracy"] >= 0.6
    predictions = catalog.load("transfer.predictions")
    assert len(predictions) == 10 and set(predictions["genre"]) <= set(GENRES)

    # the conf's model: every 3 s patch (1 s apart) of MSD_musicnn + MSD_vgg, each embedding
    # scaled to unit length, a tag-name genre prior
    features = catalog.load("musicnn_features")
    n_per_patch = 200 + 256 + 10
    assert features.shape == (40, 2 + 28 * n_per_patch)
    assert features.columns[2] == "p00.MSD_musicnn.embedding_l2_000"
    assert features.columns[2 + n_per_patch - 1] == "p00.prior.rock"
    values = features.iloc[:, 2:].to_numpy()
    assert np.isfinite(values[:, : 7 * n_per_patch]).all()  # 9 s demo tracks: 7 patches
    assert np.isnan(values[:, 7 * n_per_patch :]).all()
    first = values[:, :n_per_patch]
    np.testing.assert_allclose(np.linalg.norm(first[:, :200], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(first[:, 200:456], axis=1), 1, rtol=1e-5)
    model = catalog.load("transfer.model")
    # 20 training tracks x 7 patches
    assert model.n_patches == 28 and model.prior_columns == 10 and model.n_patches_seen_ == 140

    # serving: the saved artifacts + the shared preprocessing reproduce the evaluation exactly
    assert_service_equals_evaluation(catalog, manifest, params["musicnn"])


def assert_service_equals_evaluation(catalog, manifest, musicnn):
    from music_genre.transfer.serving import TransferService

    service = TransferService(catalog.load("musicnn_network"), catalog.load("transfer.model"),
                              GENRES, musicnn)  # fmt: skip
    predictions = catalog.load("transfer.predictions")
    features = catalog.load("musicnn_features").set_index("track_id")
    for i in (0, 5):
        row = predictions.iloc[i]
        path = manifest.set_index("track_id").loc[row["track_id"], "path"]
        np.testing.assert_allclose(service.predict_proba(path), row[GENRES].to_numpy(float),
                                   atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(service.features(path)[0],
                                   features.loc[row["track_id"]].drop("genre").to_numpy(float),
                                   atol=1e-4, rtol=1e-5)  # fmt: skip (NaN == NaN here)
        assert max(service.predict(path), key=service.predict(path).get) == row["predicted"]
    # a 2 s clip (the other-artist excerpts are 2-3 s) is one looped patch: still answered
    from music_genre.transfer.embed import load_16k

    clip = load_16k(path)[: 2 * 16000]
    proba = service.predict_proba(clip)
    assert proba.shape == (len(GENRES),) and abs(proba.sum() - 1) < 1e-6


def test_legacy_mean_embedding_model(demo, trained):
    """Today's model (mean 200-d MSD embedding, no prior) is still one conf away, and served
    identically."""
    root, manifest, split, params = demo
    legacy = {"extra_networks": [], "features": ["embedding"], "pooling": "mean",
              "genre_prior": {}}
    catalog = _catalog(root, manifest, split, params,
                       {"n_patches": None, "genre_prior": {"columns": 0},
                        "logistic_regression": {"C": 1.0, "max_iter": 2000}},
                       out="legacy", musicnn_overrides=legacy)  # fmt: skip
    SequentialRunner().run(create_pipeline(), catalog)
    features = catalog.load("musicnn_features")
    emb = catalog.load("musicnn_embeddings")
    assert features.shape == (40, 2 + 200)
    np.testing.assert_allclose(features.iloc[:, 2:].to_numpy(), emb[EMBEDDING_COLUMNS].to_numpy())
    assert catalog.load("transfer.metrics")["accuracy"] >= 0.6
    assert_service_equals_evaluation(catalog, manifest, {**params["musicnn"], **legacy})


def test_head_and_features_must_agree():
    from music_genre.pipelines.transfer.nodes import check_head

    params = yaml.safe_load((PROJECT / "conf/base/parameters_transfer.yml").read_text())
    musicnn, transfer = params["musicnn"], params["transfer"]
    check_head(musicnn, transfer, GENRES)  # the conf is consistent
    with pytest.raises(ValueError, match="transfer.n_patches=28"):
        check_head(musicnn, {**transfer, "n_patches": 3}, GENRES)
    with pytest.raises(ValueError, match="kind=logistic_regression"):
        check_head(musicnn, {**transfer, "kind": "keras_mlp"}, GENRES)
    with pytest.raises(ValueError, match="params:genres in that order"):
        check_head(musicnn, transfer, list(reversed(GENRES)))
    with pytest.raises(ValueError, match="columns: 10"):
        check_head(musicnn, {**transfer, "genre_prior": {"columns": 0}}, GENRES)
    with pytest.raises(ValueError, match="'<network>:<tag>'"):
        check_head({**musicnn, "genre_prior": {**musicnn["genre_prior"], "jazz": ["MSD_vgg:jaz"]}},
                   transfer, GENRES)


def test_second_run_is_incremental_and_offline(demo, trained, tmp_path):
    root, manifest, split, params = demo
    cache = TrackCacheDataset(path=str(root / "musicnn_cache"))
    assert len(cache.load()) >= 40  # the conf's entries (other tests may add their own)
    # weights neither cached nor downloadable: a fully cached run must not need them
    offline = {**params["musicnn"], "cache_dir": str(tmp_path / "empty"),
               "index_url": "http://127.0.0.1:9/simple"}  # fmt: skip
    new, keys = embed_tracks(manifest, cache.load(), offline, {"progress": False})
    assert new == {} and len(keys) == 40
    # changing the recipe changes every key (recomputation)
    other = {**params["musicnn"], "embedding": {**params["musicnn"]["embedding"], "patch_hop": 93}}
    _, keys2 = embed_tracks(manifest.iloc[:0], cache.load(), other, {"progress": False})
    assert len(keys2) == 0
    from music_genre.pipelines.transfer.nodes import cache_key

    p = manifest.loc[manifest["status"] == "ok", "path"].iloc[0]
    assert cache_key(p, params["musicnn"]) != cache_key(p, other)


def test_mlp_head_through_the_template(demo, trained):
    from music_genre.pipelines.training import model_pipeline

    root, manifest, split, params = demo
    catalog = _catalog(root, manifest, split, params,
                       {"kind": "keras_mlp", "epochs": 30, "verbose": 0}, out="mlp")  # fmt: skip
    # the mean embeddings (a Keras MLP does not take NaN-padded patch rows)
    catalog["musicnn_features"] = MemoryDataset(trained.load("musicnn_embeddings"))
    SequentialRunner().run(model_pipeline("transfer", "musicnn_features"), catalog)
    metrics = catalog.load("transfer.metrics")
    assert metrics["kind"] == "keras_mlp" and metrics["accuracy"] >= 0.5


def test_finetune_pipeline(demo, trained):
    from music_genre.keras_dataset import KerasModelDataset
    from music_genre.pipelines.transfer_finetune import create_pipeline as finetune_pipeline
    from music_genre.transfer.embed import musicnn_input

    root, manifest, split, params = demo
    catalog = _catalog(root, manifest, split, params, out="ft")
    catalog["musicnn_keys"] = MemoryDataset(trained.load("musicnn_keys"))
    catalog["params:transfer_finetune"] = MemoryDataset(
        {**params["transfer_finetune"], "epochs": 40, "batch_size": 16, "learning_rate": 1e-3})
    o = root / "ft"
    catalog["transfer_finetune.model"] = KerasModelDataset(filepath=str(o / "ft.keras"))
    catalog["transfer_finetune.metrics"] = JSONDataset(filepath=str(o / "ft_metrics.json"))
    catalog["transfer_finetune.predictions"] = CSVDataset(filepath=str(o / "ft_pred.csv"))
    SequentialRunner().run(finetune_pipeline(), catalog)

    metrics = catalog.load("transfer_finetune.metrics")
    assert metrics["kind"] == "musicnn_finetune" and metrics["n_test"] == 10
    assert metrics["accuracy"] >= 0.6 and metrics["epochs_run"] >= 1
    # the saved per-patch network, fed audio, agrees with the evaluation (which used the cached
    # float16 pooled features: hence the tolerance)
    model = catalog.load("transfer_finetune.model")
    row = catalog.load("transfer_finetune.predictions").iloc[0]
    from music_genre.transfer.embed import load_16k

    path = manifest.set_index("track_id").loc[row["track_id"], "path"]
    from music_genre.transfer.embed import EmbedParams

    recipe = EmbedParams.from_dict(params["musicnn"]["embedding"])  # the conf's patches
    proba = np.asarray(model.predict_on_batch(musicnn_input(load_16k(path), recipe))).mean(axis=0)
    np.testing.assert_allclose(proba, row[GENRES].to_numpy(float), atol=2e-3)
