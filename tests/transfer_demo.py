"""The transfer pipeline's demo: a synthetic collection and one run of the pipeline with the
conf's parameters, shared by the transfer and transfer_finetune pipeline tests (a pytest plugin
of tests/conftest.py; session-scoped, so the run happens once, for whichever test asks first)."""

from __future__ import annotations

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
from tests.helpers import FILTERED, PROJECT_ROOT


@pytest.fixture(scope="session")
def transfer_demo(tmp_path_factory, msd_prefix):
    """The demo collection (4 clips of 9 s per genre, one broken file), its manifest, split and
    the conf's transfer parameters."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_collection(root / "raw", n_per_genre=4, duration_s=9.0, seed=7)
    manifest = probe_tracks(AudioFolderDataset(path=str(root / "raw")).load(), GENRES)
    split = split_tracks(manifest, pd.DataFrame(), FILTERED, {"val": 0.25, "test": 0.25, "seed": 0})
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_transfer.yml").read_text())
    return root, manifest, split, params


def transfer_catalog(root, manifest, split, params, transfer_overrides=None, out="out",
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
        "params:extraction": MemoryDataset({}),
        "params:execution": MemoryDataset({"progress": False}),
        "params:transfer": MemoryDataset(transfer),
        "params:genres": MemoryDataset(GENRES), "params:seed": MemoryDataset(42),
    })  # fmt: skip


@pytest.fixture(scope="session")
def transfer_trained(transfer_demo):
    """The transfer pipeline run once on the demo collection with the conf's parameters."""
    root, manifest, split, params = transfer_demo
    catalog = transfer_catalog(root, manifest, split, params)
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog
