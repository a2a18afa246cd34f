"""Experiment tracking through real `kedro run`s of tune_rf on tiny demo audio.

MLflow (kedro-mlflow, local SQLite store): the run has parameters, metrics and artifacts; the
study and each trial are nested runs. ClearML in offline mode (no account, no server): the
recorded session holds the same metrics. Then tracking switched off in conf/ logs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import TINY, latest, make_project, run

pytestmark = pytest.mark.slow  # a tuning run in a Kedro session with MLflow and ClearML

PARAMS = {**TINY, "tuning": {"n_trials": 2}}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("tracked"))
    with pytest.MonkeyPatch.context() as env:
        # the SQLite URLs in conf (MLflow, Optuna) are relative: `kedro run` starts in the project
        env.chdir(project)
        env.setenv("MUSIC_GENRE_CLEARML", "1")  # opt in for this run
        env.setenv("CLEARML_CACHE_DIR", str(project / "clearml"))
        env.delenv("CLEARML_OFFLINE_MODE", raising=False)  # conf/base/clearml.yml: offline
        run(project, "tune_rf", params=PARAMS)
    data = project / "data" / "demo"
    metrics = json.loads(latest(data / "08_reporting/rf_tuned/metrics.json",
                                "metrics.json").read_text())
    return project, data, metrics


def _client(data: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{data}/mlflow.db")
    experiment = client.get_experiment_by_name("music_genre")
    return client, experiment.experiment_id


def test_mlflow_run_has_params_metrics_artifacts_and_nested_trials(tracked):
    project, data, metrics = tracked
    client, exp = _client(data)
    runs = client.search_runs([exp])
    top = [r for r in runs if r.info.run_name == "tune_rf"]
    assert len(top) == 1
    top = top[0]
    # parameters: every params:* input (kedro-mlflow), flattened
    assert top.data.params["rf.random_forest.n_estimators"] == "10"
    assert top.data.params["tuning.n_trials"] == "2"
    # metrics: the tuned model's test metrics and the study's best value
    assert top.data.metrics["rf_tuned.accuracy"] == pytest.approx(metrics["accuracy"])
    best = json.loads(latest(data / "08_reporting/rf/tuning/best_params.json",
                             "best_params.json").read_text())
    assert top.data.metrics["rf.tuning.best_val_accuracy"] == pytest.approx(best["best_value"])
    # artifacts: model, plots and tables, stored inside the project's data folder
    tuned = {Path(a.path).name for a in client.list_artifacts(top.info.run_id, "rf_tuned")}
    assert {"rf_tuned.bundle", "confusion_matrix.png", "training_curves.png",
            "metrics.json"} <= tuned
    study_files = {Path(a.path).name for a in client.list_artifacts(top.info.run_id, "rf")}
    assert {"best_params.json", "trials.csv", "optimization_history.png",
            "param_importances.png", "parallel_coordinate.png"} <= study_files
    assert top.info.artifact_uri.startswith(f"file://{project}/data/")

    # the study's run is nested in the kedro run, every trial in the study's run
    children = {r.info.run_id: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == top.info.run_id}
    assert [r.info.run_name for r in children.values()] == ["study rf_rich"]
    study_id = next(iter(children))
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study_id]
    assert sorted(r.info.run_name for r in trials) == ["trial 0", "trial 1"]
    by_number = {int(r.data.tags["optuna.trial"]): r for r in trials}
    table = (data / "08_reporting/rf/tuning/trials.csv")
    import pandas as pd

    frame = pd.read_csv(latest(table, "trials.csv"))
    for number, value in zip(frame["number"], frame["value"]):
        trial = by_number[number]
        assert trial.data.metrics["val_accuracy"] == pytest.approx(value)
        assert "random_forest.n_estimators" in trial.data.params


def test_clearml_offline_session_holds_the_metrics(tracked):
    project, _, metrics = tracked
    sessions = [p for p in (project / "clearml" / "offline").iterdir() if p.is_dir()]
    assert len(sessions) == 1
    session = sessions[0]
    events = [e for line in (session / "metrics.jsonl").read_text().splitlines()
              for e in json.loads(line)]
    scalars = {(e["metric"], e["variant"], e["iter"]): e["value"] for e in events
               if e["type"] == "training_stats_scalar"}
    assert scalars[("rf_tuned", "accuracy", 0)] == pytest.approx(metrics["accuracy"])
    assert scalars[("rf_tuned", "f1_macro", 0)] == pytest.approx(metrics["f1_macro"])
    assert {k[2] for k in scalars if k[:2] == ("rf.tuning", "trial value")} == {0, 1}
    images = {(e["metric"], e["variant"]) for e in events if e["type"] == "training_debug_image"}
    assert {("rf_tuned", "confusion_matrix"), ("rf", "optimization_history")} <= images
    task = json.loads((session / "task.json").read_text())
    hyper = task["hyperparams"]["params"]
    assert hyper["rf.random_forest.n_estimators"]["value"] == "10"
    assert "rf_tuned.model" in {a["key"] for a in task["execution"]["artifacts"]}


def test_tracking_switched_off_in_conf(tracked):
    project, data, _ = tracked
    client, exp = _client(data)
    n_runs = len(client.search_runs([exp]))
    conf = project / "conf" / "base" / "mlflow.yml"
    text = conf.read_text()
    assert "    pipelines: [data_processing]" in text
    conf.write_text(text.replace("    pipelines: [data_processing]",
                                 "    pipelines: [data_processing, tune_rf]"))
    # kedro-mlflow's hook is one object per process and keeps the last run's id, which it
    # reopens in every node when tracking is off; `kedro run` is a fresh process, so forget it
    from kedro_mlflow.framework.hooks import mlflow_hook

    mlflow_hook.run_id = None
    try:
        with pytest.MonkeyPatch.context() as env:
            env.chdir(project)
            env.setenv("MUSIC_GENRE_CLEARML", "0")
            run(project, "tune_rf", params={**TINY, "tuning": {"n_trials": 1}})
    finally:
        conf.write_text(text)
    assert len(client.search_runs([exp])) == n_runs  # no run, no nested trial runs
    import optuna

    study = optuna.load_study(study_name="rf_rich", storage=f"sqlite:///{data}/optuna/studies.db")
    assert len(study.trials) == 3  # the study itself went on: 2 + 1 trials
