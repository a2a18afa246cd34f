"""The ensemble: the members' test probabilities averaged by their weights (given or chosen on
grouped out-of-fold predictions), and its place in the default run and the comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from music_genre.demo import GENRES
from music_genre.pipelines.ensemble.nodes import evaluate_ensemble
from tests.helpers import PROJECT_ROOT


def _predictions(rng, ids, truth, hit_rate):
    proba = rng.dirichlet(np.ones(len(GENRES)), size=len(ids))
    hits = rng.random(len(ids)) < hit_rate
    for i in np.flatnonzero(hits):
        proba[i, GENRES.index(truth[i])] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    df = pd.DataFrame(proba, columns=GENRES)
    df.insert(0, "predicted", [GENRES[i] for i in proba.argmax(axis=1)])
    df.insert(0, "genre", truth)
    df.insert(0, "track_id", ids)
    return df


def test_ensemble_averages_the_members_test_probabilities():
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(60)]
    truth = [GENRES[i % 10] for i in range(60)]
    preds = {m: _predictions(rng, ids, truth, p) for m, p in
             (("rf", 0.6), ("mlp", 0.6), ("cnn", 0.7), ("transfer", 0.7))}
    # members in a different row order: the ensemble matches rows by track id
    preds["mlp"] = preds["mlp"].sample(frac=1, random_state=1)
    metrics = {m: {"accuracy": accuracy_score(p["genre"], p["predicted"]), "train_seconds": 2.0,
                   "inference_ms_per_track": 1.5, "n_train": 40} for m, p in preds.items()}
    params = {"name": "ensemble", "models": ["rf", "mlp", "cnn", "transfer"],
              "weights": {"rf": 1.0, "mlp": 1.0, "cnn": 2.0, "transfer": 0.0}}
    args = [x for m in params["models"] for x in (metrics[m], preds[m])]
    bundle, out, per_genre, avg, cm, curves = evaluate_ensemble(params, GENRES, pd.DataFrame(),
                                                                *args)
    assert bundle["members"] == {"rf": 1.0, "mlp": 1.0, "cnn": 2.0}
    assert bundle["weights_from"] == "params:ensemble.weights"
    members = {m: preds[m].set_index("track_id").loc[ids, GENRES].to_numpy() for m in preds}
    expected = (members["rf"] + members["mlp"] + 2 * members["cnn"]) / 4
    np.testing.assert_allclose(avg.set_index("track_id").loc[ids, GENRES].to_numpy(), expected)
    expected_acc = accuracy_score(truth, [GENRES[i] for i in expected.argmax(axis=1)])
    assert out["accuracy"] == pytest.approx(expected_acc)
    assert out["members"] == {"rf": 1.0, "mlp": 1.0, "cnn": 2.0}  # transfer weighted 0: out
    assert out["train_seconds"] == pytest.approx(6.0) and out["n_test"] == 60
    assert list(per_genre["genre"]) == GENRES
    json.dumps(out)  # a JSONDataset can save it
    json.dumps(bundle)

    # weights: auto, chosen on grouped out-of-fold predictions; without such predictions every
    # member weighs 1
    oof = pd.concat([p.assign(model=m, scheme="grouped", repeat=0, fold=0)
                     for m, p in preds.items()])
    auto = {**params, "weights": "auto"}
    bundle, out, *_ = evaluate_ensemble(auto, GENRES, oof, *args)
    assert bundle["weights_from"] == "grouped out-of-fold predictions"
    assert set(bundle["members"]) <= {"rf", "mlp", "cnn", "transfer"}
    assert abs(sum(bundle["members"].values()) - 1) < 1e-9
    bundle, *_ = evaluate_ensemble(auto, GENRES, pd.DataFrame(), *args)
    assert bundle["members"] == dict.fromkeys(params["models"], 1.0)
    assert bundle["weights_from"].startswith("equal")


def test_ensemble_is_a_model_of_the_default_run_and_the_comparison():
    from kedro.framework.startup import bootstrap_project

    from music_genre.pipeline_registry import register_pipelines

    bootstrap_project(PROJECT_ROOT)
    pipelines = register_pipelines()
    default = pipelines["__default__"]
    assert {"ensemble.metrics", "ensemble.predictions"} <= default.all_outputs()
    members = {f"{m}.predictions" for m in ("rf", "mlp", "cnn", "transfer")}
    assert members <= pipelines["ensemble"].inputs()
    assert "ensemble.metrics" in pipelines["reporting"].inputs()
    assert "rich_features" in pipelines["data_processing"].all_outputs()
    assert "evaluate_cv" in pipelines and "cv_summary" not in default.all_outputs()
