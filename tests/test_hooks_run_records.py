"""Project hooks (issue 16): what a model was trained on is recorded in its metrics, and a run
with runtime parameters that replaces the env's latest versions says which."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pandas as pd
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.pipeline import Node, Pipeline
from kedro_datasets.pandas import CSVDataset

from music_genre.hooks import ProjectHooks, _absolute_sqlite


def _context(params: dict, env: str = "demo"):
    class Loader(dict):
        config_patterns: dict = {}

        def __getitem__(self, key):
            raise KeyError(key)  # no mlflow.yml here

    return SimpleNamespace(params=params, env=env, config_loader=Loader(), project_path="/p")


def test_metrics_record_the_training_data_and_the_run():
    hooks = ProjectHooks()
    hooks.after_context_created(_context({"training_data": {
        "synthetic": True, "description": "synthetic demo audio"}}))
    hooks.before_pipeline_run({"run_id": "2026-12-04T06.00.00.000Z", "runtime_params": {},
                               "pipeline_names": ["rf"], "env": "demo"}, Pipeline([]),
                              DataCatalog({}))
    metrics = {"accuracy": 1.0}
    hooks.before_dataset_saved("rf.metrics", metrics, None)
    hooks.before_dataset_saved("rf.model", {"not": "metrics"}, None)
    info = metrics["training_data"]
    assert info["synthetic"] is True and info["env"] == "demo"
    assert info["session_id"] == "2026-12-04T06.00.00.000Z" and info["trained_at"]
    # a raw_root override trains on that folder, whatever the env declares
    hooks.before_pipeline_run({"run_id": "r2", "runtime_params": {"raw_root": "/music"},
                               "env": "demo"}, Pipeline([]), DataCatalog({}))
    other = {"accuracy": 0.5}
    hooks.before_dataset_saved("cnn.metrics", other, None)
    assert other["training_data"]["synthetic"] is False
    assert other["training_data"]["description"] == "audio files under /music"
    assert other["training_data"]["runtime_params"] == {"raw_root": "/music"}


def test_runtime_params_that_replace_the_latest_versions_warn_once(tmp_path, caplog):
    path = str(tmp_path / "manifest.csv")
    CSVDataset(filepath=path, version=Version(None, "2026-12-01T00.00.00.000Z")).save(
        pd.DataFrame({"track_id": ["a"]}))
    catalog = DataCatalog({
        "manifest": CSVDataset(filepath=path, version=Version(None, None)),
        "fresh": CSVDataset(filepath=str(tmp_path / "fresh.csv"), version=Version(None, None)),
        "raw": MemoryDataset(1)})
    pipeline = Pipeline([Node(lambda x: (x, x), "raw", ["manifest", "fresh"], name="n")])
    hooks = ProjectHooks()
    hooks.after_context_created(_context({}))
    with caplog.at_level(logging.WARNING, logger="music_genre.hooks"):
        hooks.before_pipeline_run({"run_id": "r", "runtime_params": {}, "env": "demo"},
                                  pipeline, catalog)
        assert not caplog.records  # no runtime parameters: an ordinary run
        hooks.before_pipeline_run({"run_id": "r", "runtime_params": {"raw_root": "/else"},
                                   "env": "demo"}, pipeline, catalog)
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "manifest" in text and "fresh" not in text and "raw_root" in text
    assert "env 'demo'" in text and "conf/<name>/globals.yml" in text


def test_sqlite_uri_resolves_against_the_project():
    assert _absolute_sqlite("sqlite:///data/demo/mlflow.db", "/proj") == \
        "sqlite:////proj/data/demo/mlflow.db"
    assert _absolute_sqlite("sqlite:////abs/m.db", "/proj") == "sqlite:////abs/m.db"
    assert _absolute_sqlite("http://mlflow:5000", "/proj") == "http://mlflow:5000"
