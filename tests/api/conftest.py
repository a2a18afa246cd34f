"""Fixtures for the prediction-service tests.

One throw-away project per test session (``tests.helpers.make_project``) with an ``apitest``
environment: the demo's synthetic audio, shrunk to 3 clips of 6 s per genre with 6 s analysis
windows, and tiny models. The real ``data_processing`` and ``training`` pipelines run on it
through a KedroSession, so the service loads genuine catalog artifacts (versioned models,
metrics, predictions) and the tests can compare its answers with the pipelines' own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import make_project

WINDOW_S = 6.0
MAX_UPLOAD_MB = 2.0
MAX_ANALYSED_S = 30.0

API_TEST_PARAMS = {
    "extraction": {"duration_s": WINDOW_S},
    "execution": {"n_jobs": 1, "progress": False},
    "mlp": {"epochs": 3, "hidden_units": [16], "bn_momentum": 0.9, "verbose": 0},
    "cnn": {"epochs": 1, "filters": [4, 8], "dense_units": 8, "batch_size": 8, "verbose": 0,
            "bn_momentum": 0.8},
    "rf": {"random_forest": {"n_estimators": 20, "n_jobs": 1}, "pca_components": 5},
    "api": {"max_upload_mb": MAX_UPLOAD_MB, "min_duration_s": 3.0, "warmup": False,
            "max_concurrent": 2, "max_queue": 32, "max_analysed_s": MAX_ANALYSED_S},
    # what the demo env declares: the hooks record it in every model's metrics
    "training_data": {"synthetic": True, "description": "synthetic test audio"},
}


@pytest.fixture(scope="session")
def api_project(tmp_path_factory) -> Path:
    """A trained project: ``data/apitest`` holds rf, rf_robust, mlp and cnn (transfer is left
    untrained)."""
    project = make_project(tmp_path_factory.mktemp("api_project"))
    env = project / "conf" / "apitest"
    env.mkdir()
    (env / "globals.yml").write_text("data: data/apitest\nseed: 42\n")
    (env / "catalog.yml").write_text(yaml.safe_dump({"raw_audio": {
        "type": "music_genre.datasets.AudioFolderDataset",
        "path": "${globals:data}/01_raw/gtzan",
        "synthetic": {"n_per_genre": 3, "duration_s": WINDOW_S, "seed": 42},
    }}))
    (env / "parameters.yml").write_text(yaml.safe_dump(API_TEST_PARAMS))
    _train(project)
    return project


def _train(project: Path) -> None:
    """``kedro run --pipeline data_processing`` + ``training`` in one session, limited to what
    the service reads (models, metrics, test predictions) and the tests compare with."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    outputs = [f"{m}.{o}" for m in ("rf", "rf_robust", "mlp", "cnn")
               for o in ("model", "metrics", "predictions")]
    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, env="apitest") as session:
            session.run(pipeline_names=["data_processing", "training"],
                        to_outputs=outputs + ["features", "spectrograms", "manifest",
                                              "degraded_features"])
        with KedroSession.create(project_path=project, env="apitest") as session:
            _save_ensemble(session.load_context().catalog)
    finally:
        while mlflow.active_run():  # never let this run leak into another test's session
            mlflow.end_run()


#: the served ensemble of the test project: members and hand weights (no CV predictions here)
ENSEMBLE = {"name": "ensemble", "models": ["rf", "mlp", "cnn"],
            "weights": {"rf": 2.0, "mlp": 1.0, "cnn": 1.0}}


def _save_ensemble(catalog) -> None:
    """The ensemble node on the members' real reports, its bundle and reports saved through the
    catalog (the ensemble pipeline itself also needs a trained transfer model)."""
    import pandas as pd

    from music_genre.pipelines.ensemble.nodes import evaluate_ensemble

    genres = catalog.load("params:genres")
    reports = [r for m in ENSEMBLE["models"]
               for r in (catalog.load(f"{m}.metrics"), catalog.load(f"{m}.predictions"))]
    bundle, metrics, _, predictions, _, _ = evaluate_ensemble(ENSEMBLE, genres, pd.DataFrame(),
                                                              *reports)
    catalog.save("ensemble.model", bundle)
    catalog.save("ensemble.metrics", metrics)
    catalog.save("ensemble.predictions", predictions)


@pytest.fixture(scope="session")
def api_data(api_project) -> Path:
    return api_project / "data" / "apitest"


@pytest.fixture(scope="module")
def test_tracks(api_data):
    """The test split's tracks with their audio paths (one .au and two .wav among them)."""
    import pandas as pd

    from tests.helpers import latest

    split = pd.read_csv(latest(api_data / "05_model_input" / "split.csv", "split.csv"))
    manifest = pd.read_csv(latest(api_data / "03_primary" / "manifest.csv", "manifest.csv"))
    tracks = split[split["split"] == "test"].merge(manifest[["track_id", "path"]], on="track_id")
    return tracks.sort_values("track_id").reset_index(drop=True)


@pytest.fixture(scope="session")
def client(api_project):
    """TestClient on the module-level ``app`` (what ``uvicorn music_genre.api.app:app`` serves),
    configured the way a deployment configures it: MUSIC_GENRE_API_* environment variables."""
    from fastapi.testclient import TestClient

    from music_genre.api.app import app

    env = {"MUSIC_GENRE_API_PROJECT_PATH": str(api_project), "MUSIC_GENRE_API_ENV": "apitest"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_process(request, api_project, tmp_path_factory):
    """``python -m music_genre.api`` as a real uvicorn process on 127.0.0.1, started as soon as
    the project is trained (its start-up overlaps the in-process tests) and stopped at the end.
    Yields (process, url, log path)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "music_genre.api", "--project-path", str(api_project),
             "--env", "apitest", "--port", str(port), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=api_project)
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", autouse=True)
def _start_server_early(request):
    # only when a collected test needs the live server
    if any("live_server" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("server_process")


@pytest.fixture(scope="session")
def live_server(server_process) -> str:
    """The live server's URL, once it answers /health."""
    process, url, log = server_process
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer /health in 180 s:\n{log.read_text()}")
        time.sleep(0.25)
