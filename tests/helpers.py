"""Helpers for tests that run the real project: a throw-away copy of its configuration."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: the fault-filtered GTZAN split lists the project ships (catalog: filtered_split_lists)
FILTERED = pd.read_csv(PROJECT_ROOT / "conf" / "base" / "splits" / "gtzan_filtered.csv",
                       comment="#")


def make_project(root: Path) -> Path:
    """A project folder with this project's conf/ and pyproject.toml, and an empty data tree.

    The package itself is the installed one; runs write only under ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir(exist_ok=True)  # Kedro checks it exists; the package is installed
    (root / "data").mkdir(exist_ok=True)
    return root


def run(project: Path, pipeline: str | None = None, env: str = "demo",
        params: dict | None = None) -> dict:
    """``kedro run`` through a real KedroSession; returns the run's free outputs."""
    import mlflow

    bootstrap_project(project)
    cwd = os.getcwd()
    os.chdir(project)  # relative SQLite URLs (MLflow, Optuna) resolve against the working dir
    try:
        with KedroSession.create(project_path=project, env=env,
                                 runtime_params=params or {}) as session:
            return session.run(pipeline_names=[pipeline] if pipeline else None)
    finally:
        os.chdir(cwd)
        # several sessions in one process: never let one MLflow run leak into the next
        # (`kedro run` is a fresh process; kedro-mlflow's hook object keeps the last run id)
        while mlflow.active_run():
            mlflow.end_run()
        from kedro_mlflow.framework.hooks import mlflow_hook

        mlflow_hook.run_id = None


def latest(folder: Path, name: str) -> Path:
    """The newest version of a versioned dataset ``folder/<version>/name``."""
    versions = sorted(p for p in folder.iterdir() if p.is_dir())
    assert versions, f"no versions under {folder}"
    return versions[-1] / name


# Tiny demo settings: 3 clips of 6 s per genre, 1-2 epochs; minutes become seconds.
TINY = {
    "demo_n_per_genre": 3,
    "demo_duration_s": 6.0,
    "extraction": {"duration_s": 6.0},
    "execution": {"n_jobs": 1, "progress": False},
    "mlp": {"epochs": 2, "hidden_units": [16, 8], "verbose": 0},
    "cnn": {"epochs": 1, "filters": [4, 8], "dense_units": 8, "batch_size": 8, "verbose": 0},
    "rf": {"random_forest": {"n_estimators": 10, "n_jobs": 1}, "pca_components": 5},
}


def key_memo_datasets(folder: Path) -> dict:
    """The two catalog names of the extraction's key memo (conf/base/catalog_data_processing.yml),
    as the project declares them, in ``folder``: for tests that build their own catalog."""
    from kedro_datasets.pandas import CSVDataset

    from music_genre.datasets import OptionalCSVDataset

    path = str(Path(folder) / "track_keys.csv")
    return {"track_key_memo_previous": OptionalCSVDataset(
                filepath=path, load_args={"dtype": str, "keep_default_na": False}),
            "track_key_memo": CSVDataset(filepath=path, save_args={"index": False})}
