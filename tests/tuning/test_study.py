"""Studies live in a database: a second run resumes the study, two processes share one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import optuna
import pytest

from music_genre import tuning
from music_genre.pipelines.tuning import nodes as tuning_nodes
from tests.tuning_data import GENRES, PROJECT

optuna.logging.set_verbosity(optuna.logging.WARNING)

# a cheap model so that the tests time the storage, not the training
LOGREG = {"name": "logreg", "kind": "logistic_regression", "pca_components": None,
          "logistic_regression": {"C": 1.0, "max_iter": 200}}
SPACE = {"logistic_regression.C": {"low": 1.0e-3, "high": 10.0, "log": True},
         "pca_components": {"choices": [None, 4, 8]}}


def _tuning(storage: str, n_trials: int) -> dict:
    return {"n_trials": n_trials, "storage": storage, "metric": "val_accuracy",
            "sampler": {"n_startup_trials": 2}, "heartbeat_s": 5, "mlflow": False}


@pytest.mark.slow  # two studies in SQLite, a process each
def test_a_second_run_resumes_the_study(tmp_path, features_and_split):
    features, split = features_and_split
    storage = f"sqlite:///{tmp_path}/optuna/studies.db"  # the folder is created
    model_tuning = {"study_name": "logreg", "space": SPACE}
    first = tuning_nodes.tune_model(features, split, LOGREG, model_tuning, _tuning(storage, 3),
                              GENRES, seed=0)
    assert len(first.trials) == 3
    # a new process would start from the storage URL alone: load it from there
    second = tuning_nodes.tune_model(features, split, LOGREG, model_tuning, _tuning(storage, 2),
                               GENRES, seed=0)
    reloaded = optuna.load_study(study_name="logreg", storage=storage)
    assert [t.number for t in reloaded.trials] == [0, 1, 2, 3, 4]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in reloaded.trials)
    assert len(second.trials) == 5
    # trial 0 was the configured block itself, the baseline the tuned values are compared with
    assert reloaded.trials[0].user_attrs["configured"]
    assert reloaded.trials[0].params == {"logistic_regression.C": 1.0, "pca_components": None}
    # the resumed run did not replay the first run's random start
    assert reloaded.trials[3].params != reloaded.trials[0].params

    summary, table, *figures = tuning_nodes.report_study(second)
    json.dumps(summary)  # the best_params report is plain JSON
    assert summary["n_trials"]["complete"] == 5 and summary["storage"] == storage
    assert summary["best_value"] == max(t.value for t in reloaded.trials)
    assert summary["params"]["logistic_regression"]["C"] == \
        summary["search_values"]["logistic_regression.C"]
    assert list(table["number"]) == [0, 1, 2, 3, 4]
    assert table["value"].between(0, 1).all()
    assert {"params_logistic_regression.C", "user_attrs_val_loss"} <= set(table.columns)
    assert len(figures) == 3 and all(fig.axes for fig in figures)


WORKER = textwrap.dedent("""
    import os, sys
    import optuna
    sys.path.insert(0, {root!r})
    from tests.tuning_data import GENRES, synthetic_features
    from music_genre import tuning
    from music_genre.models import training
    from music_genre.models.inputs import labels as _labels

    features, split = synthetic_features()
    (tr, y_tr), (va, y_va) = _labels(split, "train", GENRES), _labels(split, "val", GENRES)
    study = tuning.open_study("shared", {storage!r}, seed=0, worker=int(sys.argv[1]),
                              sampler={{"n_startup_trials": 2}}, heartbeat_s=5)
    objective = tuning.make_objective(
        {base!r}, {space!r}, training.select(features, tr), y_tr, training.select(features, va),
        y_va, n_classes=len(GENRES), seed=0, log_to_mlflow=False)

    def tagged(trial):
        trial.set_user_attr("pid", os.getpid())
        return objective(trial)

    study.optimize(tagged, n_trials={n})
""")


@pytest.mark.slow  # worker processes
def test_two_processes_share_one_study(tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"  # the default backend; journal: works alike
    n = 5
    code = WORKER.format(root=str(PROJECT), storage=storage, base=LOGREG,
                         space=SPACE, n=n)
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src")}
    workers = [subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    for w in workers:
        out, _ = w.communicate(timeout=120)
        assert w.returncode == 0, out[-3000:]

    study = optuna.load_study(study_name="shared",
                              storage=tuning.open_storage(storage, heartbeat_s=None))
    trials = study.trials
    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(2 * n))  # every trial recorded once, none lost or doubled
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    pids = [t.user_attrs["pid"] for t in trials]
    assert sorted(pids.count(p) for p in set(pids)) == [n, n]  # both processes did their share
