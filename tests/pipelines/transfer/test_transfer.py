"""The `transfer` pipeline on the synthetic demo collection: embed (cached) → train → evaluate
(the run itself: the ``transfer_trained`` fixture of tests/transfer_demo.py)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from kedro.io import MemoryDataset
from kedro.runner import SequentialRunner

from music_genre.datasets import TrackCacheDataset
from music_genre.demo import GENRES
from music_genre.pipelines.transfer import create_pipeline
from music_genre.pipelines.transfer.nodes import EMBEDDING_COLUMNS, embed_tracks
from tests.helpers import PROJECT_ROOT
from tests.transfer_demo import transfer_catalog


def test_pipeline_on_demo_data(transfer_demo, transfer_trained):
    root, manifest, split, params = transfer_demo
    assert (manifest["status"] == "excluded").sum() == 1  # the demo's deliberately broken file
    catalog = transfer_trained

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
    model = catalog.load("transfer.model").model  # the head in its bundle
    # fit_on train+val: the 20 training + 10 validation tracks x 7 patches (the 10 test: none)
    assert (split["split"] == "train").sum() == 20 and (split["split"] == "val").sum() == 10
    assert model.n_patches == 28 and model.prior_columns == 10 and model.n_patches_seen_ == 210

    # serving: the saved artifacts + the shared preprocessing reproduce the evaluation exactly
    assert_service_equals_evaluation(catalog, manifest, params["musicnn"])


def assert_service_equals_evaluation(catalog, manifest, musicnn):
    from music_genre import inference

    # served as the head's bundle says: its contract carries the recipe (networks, prior,
    # patching) that the run's params:musicnn gave
    bundle = catalog.load("transfer.model")
    assert bundle.family == "embedding-head" and bundle.genres == list(GENRES)
    assert {k: bundle.contract["input"]["musicnn"].get(k) for k in
            ("extra_networks", "features", "pooling", "genre_prior", "genre_prior_aggregate",
             "embedding")} == \
        {k: musicnn.get(k) for k in ("extra_networks", "features", "pooling", "genre_prior",
                                     "genre_prior_aggregate", "embedding")}
    loaded = inference.loaded_model("transfer", bundle, network=catalog.load("musicnn_network"))
    service = loaded.extras["transfer_service"]
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


def test_legacy_mean_embedding_model(transfer_demo, transfer_trained):
    """Today's model (mean 200-d MSD embedding, no prior) is still one conf away, and served
    identically."""
    root, manifest, split, params = transfer_demo
    legacy = {"extra_networks": [], "features": ["embedding"], "pooling": "mean",
              "genre_prior": {}}
    catalog = transfer_catalog(root, manifest, split, params,
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

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_transfer.yml").read_text())
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


def test_second_run_is_incremental_and_offline(transfer_demo, transfer_trained, tmp_path):
    root, manifest, split, params = transfer_demo
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


def test_mlp_head_through_the_template(transfer_demo, transfer_trained):
    from music_genre.pipelines.training import model_pipeline

    root, manifest, split, params = transfer_demo
    catalog = transfer_catalog(root, manifest, split, params,
                       {"kind": "keras_mlp", "epochs": 30, "verbose": 0}, out="mlp")  # fmt: skip
    # the mean embeddings (a Keras MLP does not take NaN-padded patch rows)
    catalog["musicnn_features"] = MemoryDataset(transfer_trained.load("musicnn_embeddings"))
    SequentialRunner().run(model_pipeline("transfer", "musicnn_features"), catalog)
    metrics = catalog.load("transfer.metrics")
    assert metrics["kind"] == "keras_mlp" and metrics["accuracy"] >= 0.5
