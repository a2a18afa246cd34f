"""Project hooks: a run reads back the versions it wrote, whatever other runs write meanwhile."""

from __future__ import annotations

import pandas as pd
from kedro.io import DataCatalog
from kedro.io.core import Version
from kedro_datasets.pandas import CSVDataset

from music_genre.hooks import ProjectHooks


def test_a_run_reads_back_its_own_version_not_a_later_runs(tmp_path):
    path = str(tmp_path / "fold_metrics.csv")
    catalog = DataCatalog({"fold_metrics": CSVDataset(
        filepath=path, version=Version(None, "2026-12-01T00.34.34.998Z"))})
    hooks = ProjectHooks()
    hooks.after_catalog_created(catalog)
    catalog.save("fold_metrics", pd.DataFrame({"run": ["mine"]}))
    hooks.after_dataset_saved("fold_metrics", None, None)
    # a second run, started later, saves the same dataset before this run's next node loads it
    CSVDataset(filepath=path, version=Version(None, "2026-12-01T00.49.39.853Z")).save(
        pd.DataFrame({"run": ["other"]}))
    assert catalog.load("fold_metrics")["run"].tolist() == ["mine"]
    # what Kedro would have read without the hook: the newest version on disk
    assert CSVDataset(filepath=path, version=Version(None, None)).load()["run"].tolist() == [
        "other"]
