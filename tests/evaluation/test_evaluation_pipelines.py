"""evaluate_cv and ensemble pipelines, predefined splits with every model, the reference env."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from sklearn.metrics import accuracy_score, f1_score

from music_genre.datasets import SpectrogramSet
from music_genre.pipelines.data_processing.nodes import split_tracks
from music_genre.pipelines.ensemble.nodes import evaluate_ensemble
from music_genre.pipelines.training.nodes import evaluate_model, train_model
from tests.helpers import PROJECT_ROOT, TINY, latest, make_project, run

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock"]


def test_reference_environment_is_the_reference_recipe():
    """conf/reference trains exactly evaluate_cv.reference_recipe (the side-by-side baseline)."""
    base = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base",
                             default_run_env="reference")["parameters"]
    recipe = base["evaluate_cv"]["reference_recipe"]
    for model in ("rf", "mlp", "cnn"):
        assert base[model] == recipe[model], model
    assert recipe["rf"]["pca_components"] == 30 and recipe["cnn"]["filters"] == [32, 64, 128, 256]
    assert "segment" not in recipe["cnn"]


def test_evaluate_cv_pipeline_on_tiny_demo_with_a_predefined_split(tmp_path):
    project = make_project(tmp_path / "p")
    # a user's CSV: split for the model pipelines, fold for predefined CV (3 clips per genre)
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(3)]
    csv = tmp_path / "split.csv"
    pd.DataFrame({"track_id": ids, "split": ["train", "val", "test"] * 10,
                  "fold": [0, 1, 2] * 10}).to_csv(csv, index=False)
    cv = {"n_splits": 3, "n_repeats": 1, "schemes": ["grouped", "predefined"],
          "grouped": {"block_size": 1},
          "run": ["rf_reference", "rf_rich", "cnn_segments"],
          "ensembles": {"ensemble_cv": ["rf_rich", "cnn_segments"], "missing": ["rf", "x"]},
          "variants": {"cnn_segments": {"overrides": {
              "epochs": 1, "filters": [4], "dense_units": 8, "batch_size": 8,
              "segment": {"frames": 64, "crops_per_track": 2}}}}}
    params = {**TINY, "split_csv": str(csv), "evaluate_cv": cv,
              "rf": {**TINY["rf"], "pca_components": None}}
    run(project, "evaluate_cv", params=params)
    data = project / "data" / "demo"
    rich = pd.read_parquet(latest(data / "04_feature/rich_features.parquet",
                                  "rich_features.parquet"))
    feats = pd.read_parquet(latest(data / "04_feature/features.parquet", "features.parquet"))
    assert rich.shape == (30, 2 + 166)
    # the rich table starts with the reference 57, computed the same way
    np.testing.assert_allclose(rich.iloc[:, 2:59].to_numpy(), feats.iloc[:, 2:].to_numpy(),
                               rtol=1e-6, atol=1e-6)

    folds = pd.read_csv(latest(data / "05_model_input/cv_folds.csv", "cv_folds.csv"))
    assert set(folds["scheme"]) == {"grouped", "predefined"}
    pre = folds[folds["scheme"] == "predefined"].set_index("track_id")["fold"]
    assert (pre.loc[ids] == [0, 1, 2] * 10).all()

    fm = pd.read_csv(latest(data / "08_reporting/cv/fold_metrics.csv", "fold_metrics.csv"))
    oof = pd.read_csv(latest(data / "07_model_output/cv/out_of_fold_predictions.csv",
                             "out_of_fold_predictions.csv"))
    assert set(fm["model"]) == {"rf_reference", "rf_rich", "cnn_segments", "ensemble_cv"}
    assert len(fm) == 4 * 2 * 3  # 4 variants × 2 schemes × 3 folds
    # fold metrics recomputed independently from the out-of-fold predictions
    for (model, scheme, fold), part in oof.groupby(["model", "scheme", "fold"]):
        row = fm[(fm["model"] == model) & (fm["scheme"] == scheme) & (fm["fold"] == fold)]
        assert row["accuracy"].item() == pytest.approx(
            accuracy_score(part["genre"], part["predicted"]))
        assert row["f1_macro"].item() == pytest.approx(
            f1_score(part["genre"], part["predicted"], average="macro", zero_division=0))
        # each track tested once per scheme, never in its own training folds
        assert not part["track_id"].duplicated().any()
    ens = oof[oof["model"] == "ensemble_cv"].set_index(["scheme", "fold", "track_id"])[GENRES]
    members = [oof[oof["model"] == m].set_index(["scheme", "fold", "track_id"])[GENRES]
               for m in ("rf_rich", "cnn_segments")]
    np.testing.assert_allclose(ens.to_numpy(), ((members[0] + members[1]) / 2).loc[ens.index])

    summary = pd.read_csv(latest(data / "08_reporting/cv/summary.csv", "summary.csv"))
    assert len(summary) == 4 * 2 and (summary["n_tracks"] == 30).all()
    assert (summary["accuracy_ci95_low"] <= summary["accuracy_pooled"]).all()
    assert (summary["accuracy_pooled"] <= summary["accuracy_ci95_high"]).all()
    md = latest(data / "08_reporting/cv/summary.md", "summary.md").read_text()
    assert "| rf_reference | grouped |" in md


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
    out, per_genre, avg, cm, curves = evaluate_ensemble(params, GENRES, *args)
    members = {m: preds[m].set_index("track_id").loc[ids, GENRES].to_numpy() for m in preds}
    expected = (members["rf"] + members["mlp"] + 2 * members["cnn"]) / 4
    np.testing.assert_allclose(avg.set_index("track_id").loc[ids, GENRES].to_numpy(), expected)
    expected_acc = accuracy_score(truth, [GENRES[i] for i in expected.argmax(axis=1)])
    assert out["accuracy"] == pytest.approx(expected_acc)
    assert out["members"] == {"rf": 1.0, "mlp": 1.0, "cnn": 2.0}  # transfer weighted 0: out
    assert out["train_seconds"] == pytest.approx(6.0) and out["n_test"] == 60
    assert list(per_genre["genre"]) == GENRES
    json.dumps(out)  # a JSONDataset can save it


@pytest.mark.parametrize("kind", ["random_forest", "keras_mlp", "keras_cnn"])
def test_a_predefined_split_csv_drives_every_model(kind):
    rng = np.random.default_rng(1)
    ids = [f"{g}.{i:05d}" for g in GENRES[:4] for i in range(6)]
    genre = [i.split(".")[0] for i in ids]
    manifest = pd.DataFrame({"track_id": ids, "genre": genre, "status": "ok"})
    csv = pd.DataFrame({"track_id": [f"{i}.wav" for i in ids],
                        "split": (["train"] * 3 + ["val", "test", "test"]) * 4})
    split = split_tracks(manifest, csv, {"val": 0.2, "test": 0.2, "seed": 0})
    assert (split.set_index("track_id").loc[ids, "split"].to_numpy()
            == csv["split"].to_numpy()).all()
    centre = {g: rng.normal(size=8) * 3 for g in GENRES[:4]}
    if kind == "keras_cnn":
        data = np.stack([rng.random((8, 32)) * 0.1 + GENRES.index(g) / 10 for g in genre])
        model_input = SpectrogramSet(np.array(ids), data.astype(np.float16))
        params = {"kind": kind, "filters": [4], "dense_units": 8, "epochs": 1, "verbose": 0,
                  "batch_size": 4, "specaugment": {"enabled": False}}
    else:
        x = np.stack([centre[g] + rng.normal(size=8) * 0.1 for g in genre])
        model_input = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
        model_input.insert(0, "genre", genre)
        model_input.insert(0, "track_id", ids)
        params = {"kind": kind, "random_forest": {"n_estimators": 20, "n_jobs": 1},
                  "hidden_units": [16], "epochs": 30, "verbose": 0,
                  "optimizer": {"learning_rate": 0.05}, "early_stopping": {"enabled": False}}
    params["name"] = kind
    model, info = train_model(model_input, split, params, GENRES, 0)
    metrics, _, predictions, _, _ = evaluate_model(model, model_input, split, info, params,
                                                   GENRES)
    assert info["n_train"] == 12 and metrics["n_test"] == 8
    assert sorted(predictions["track_id"]) == sorted(csv.loc[csv["split"] == "test", "track_id"]
                                                     .str.replace(".wav", ""))
    if kind != "keras_cnn":  # well separated clusters: the feature models must get them right
        assert metrics["accuracy"] >= 0.75


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
