"""evaluate_cv and ensemble pipelines, predefined splits with every model, the reference env."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from sklearn.metrics import accuracy_score, f1_score

from music_genre import audio
from music_genre.datasets import SpectrogramSet
from music_genre.pipelines.data_processing.nodes import split_tracks
from music_genre.pipelines.ensemble.nodes import evaluate_ensemble
from music_genre.models.inputs import augmented_training_set
from music_genre.pipelines.training.nodes import evaluate_model, train_model
from tests.helpers import FILTERED, PROJECT_ROOT, TINY, latest, make_project, run

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock"]


def test_reference_environment_is_the_reference_recipe():
    """conf/reference trains exactly evaluate_cv.reference_recipe (the side-by-side baseline),
    merged over base the way the project merges parameters (softly: keys only base sets, such
    as the segment CNN of base, reach the reference env unless it sets them)."""
    from music_genre.settings import CONFIG_LOADER_ARGS

    merged = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base",
                               default_run_env="reference",
                               merge_strategy=CONFIG_LOADER_ARGS["merge_strategy"])["parameters"]
    recipe = merged["evaluate_cv"]["reference_recipe"]
    # how the service computes rf's columns and where Keras runs: no effect on the recipe
    neutral = {"rich_segment_s", "accelerator"}
    for model in ("rf", "mlp", "cnn"):
        assert {k: v for k, v in merged[model].items() if k not in neutral} == recipe[model], model
    assert recipe["rf"]["pca_components"] == 30 and recipe["cnn"]["filters"] == [32, 64, 128, 256]
    assert recipe["cnn"]["segment"]["frames"] is None  # whole 30 s spectrograms
    assert merged["cnn"]["segment"]["frames"] is None and merged["rf"]["augment"] == []


def test_evaluate_cv_pipeline_on_tiny_demo_with_a_predefined_split(tmp_path):
    project = make_project(tmp_path / "p")
    # a user's CSV: split for the model pipelines, fold for predefined CV (3 clips per genre)
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(3)]
    csv = tmp_path / "split.csv"
    pd.DataFrame({"track_id": ids, "split": ["train", "val", "test"] * 10,
                  "fold": [0, 1, 2] * 10}).to_csv(csv, index=False)
    cv = {"n_splits": 3, "n_repeats": 1, "schemes": ["grouped", "predefined"],
          "grouped": {"block_size": 1}, "test_conditions": ["full", "resample_8k"],
          "run": ["rf_reference", "rf_rich", "cnn_segments", "rf_augmented", "rf_robust"],
          "ensembles": {"ensemble_cv": ["rf_rich", "cnn_segments"], "missing": ["rf", "x"]},
          "variants": {"cnn_segments": {"overrides": {
              "epochs": 1, "filters": [4], "dense_units": 8, "batch_size": 8,
              "segment": {"frames": 64, "crops_per_track": 2}}},
              "rf_augmented": {"overrides": {"augment": ["resample_8k"]}}}}
    params = {**TINY, "split_csv": str(csv), "evaluate_cv": cv,
              "augmentation": {"degradations": ["resample_8k"]},
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
    # every track again as an 8 kHz recording: audio.degrade then the same rich features
    degraded = pd.read_parquet(latest(data / "04_feature/degraded_features.parquet",
                                      "degraded_features.parquet"))
    assert degraded.shape == (30, 3 + 166) and set(degraded["degradation"]) == {"resample_8k"}
    assert list(degraded.columns[3:]) == list(rich.columns[2:])
    manifest = pd.read_csv(latest(data / "03_primary/manifest.csv", "manifest.csv"))
    track = manifest[manifest["status"] == "ok"].iloc[4]
    p = audio.ExtractionParams(duration_s=6.0)
    y = audio.fix_length(audio.load_audio(track["path"], sr=p.sample_rate), p.n_samples)
    expected = audio.rich_features(audio.degrade(y, p.sample_rate, "resample_8k"), p)
    got = degraded.set_index("track_id").loc[track["track_id"]].iloc[2:].to_numpy(float)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    full = rich.set_index("track_id")
    low = degraded.set_index("track_id").loc[full.index]
    # nothing above 4 kHz is left: the 85 % rolloff falls below it on every track
    assert (low["rolloff_mean"] < 4000).all() and (low["rolloff_mean"] < full["rolloff_mean"]).all()

    folds = pd.read_csv(latest(data / "05_model_input/cv_folds.csv", "cv_folds.csv"))
    assert set(folds["scheme"]) == {"grouped", "predefined"}
    pre = folds[folds["scheme"] == "predefined"].set_index("track_id")["fold"]
    assert (pre.loc[ids] == [0, 1, 2] * 10).all()

    fm = pd.read_csv(latest(data / "08_reporting/cv/fold_metrics.csv", "fold_metrics.csv"))
    oof = pd.read_csv(latest(data / "07_model_output/cv/out_of_fold_predictions.csv",
                             "out_of_fold_predictions.csv"))
    scored_8k = {"rf_reference@resample_8k", "rf_rich@resample_8k", "rf_augmented@resample_8k",
                 "rf_robust@resample_8k"}
    assert set(fm["model"]) == {"rf_reference", "rf_rich", "cnn_segments", "rf_augmented",
                                "rf_robust", "ensemble_cv"} | scored_8k  # no cnn@: no degraded
    assert len(fm) == 10 * 2 * 3  # 10 rows per fold × 2 schemes × 3 folds
    # rf_robust hears everything through the 8 kHz chain: an 8 kHz recording changes nothing
    a = oof[oof["model"] == "rf_robust"].set_index(["scheme", "fold", "track_id"])[GENRES]
    b = oof[oof["model"] == "rf_robust@resample_8k"].set_index(["scheme", "fold", "track_id"])
    np.testing.assert_array_equal(a.to_numpy(), b.loc[a.index, GENRES].to_numpy())
    # same fold, same model: the 8 kHz row scores the test tracks' degraded copies
    for name in ("rf_rich", "rf_augmented"):
        a = oof[oof["model"] == name].set_index(["scheme", "fold", "track_id"])
        b = oof[oof["model"] == f"{name}@resample_8k"].set_index(["scheme", "fold", "track_id"])
        assert sorted(a.index) == sorted(b.index)
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
    assert len(summary) == 10 * 2 and (summary["n_tracks"] == 30).all()
    assert (summary["accuracy_ci95_low"] <= summary["accuracy_pooled"]).all()
    assert (summary["accuracy_pooled"] <= summary["accuracy_ci95_high"]).all()
    md = latest(data / "08_reporting/cv/summary.md", "summary.md").read_text()
    assert "| rf_reference | grouped |" in md

    # a re-run with the same inputs and parameters reads every fold back from the fold cache
    # (the CNN is not trained again) and reproduces the summary exactly; a changed parameter
    # trains that variant's folds again
    cache = data / "02_intermediate" / "cv_fold_cache"
    n_entries = len(list(cache.glob("*.npz")))
    assert n_entries == 5 * 2 * 3  # 5 variants × 2 schemes × 3 folds
    stamp = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    run(project, "evaluate_cv", params=params)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")} == stamp
    again = sorted((data / "08_reporting/cv/summary.csv").iterdir())[-1] / "summary.csv"
    pd.testing.assert_frame_equal(pd.read_csv(again).drop(columns="train_seconds_mean"),
                                  summary.drop(columns="train_seconds_mean"))
    changed = {**params, "evaluate_cv": {**cv, "run": ["rf_reference"]}}
    changed["evaluate_cv"]["variants"] = {**cv["variants"], "rf_reference": {
        "overrides": {"random_forest": {"n_estimators": 7}}}}
    run(project, "evaluate_cv", params=changed)
    assert len(list(cache.glob("*.npz"))) == n_entries + 2 * 3


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


@pytest.mark.parametrize("kind", ["random_forest", "keras_mlp", "keras_cnn"])
def test_a_predefined_split_csv_drives_every_model(kind):
    rng = np.random.default_rng(1)
    ids = [f"{g}.{i:05d}" for g in GENRES[:4] for i in range(6)]
    genre = [i.split(".")[0] for i in ids]
    manifest = pd.DataFrame({"track_id": ids, "genre": genre, "status": "ok"})
    csv = pd.DataFrame({"track_id": [f"{i}.wav" for i in ids],
                        "split": (["train"] * 3 + ["val", "test", "test"]) * 4})
    split = split_tracks(manifest, csv, FILTERED, {"val": 0.2, "test": 0.2, "seed": 0})
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


def test_augmentation_learns_from_degraded_copies_of_training_tracks_only():
    ids = [f"{g}.{i:05d}" for g in GENRES[:2] for i in range(5)]
    genre = [i.split(".")[0] for i in ids]
    table = pd.DataFrame({"track_id": ids, "genre": genre, "a": np.arange(10.0),
                          "b": np.arange(10.0) * 2})
    # degraded rows carry recognisable values: 100 + track (mp3), 200 + track (resample_8k)
    degraded = pd.concat([table.assign(degradation=kind, a=table["a"] + off, b=-1.0)
                          for kind, off in (("mp3", 100), ("resample_8k", 200))])
    split = pd.DataFrame({"track_id": ids, "genre": genre,
                          "split": (["train"] * 3 + ["val", "test"]) * 2})
    train = split[split["split"] == "train"]["track_id"].to_numpy()
    y = np.array([GENRES.index(g) for g in split[split["split"] == "train"]["genre"]])
    params = {"name": "rf", "kind": "random_forest", "augment": ["mp3", "resample_8k"],
              "random_forest": {"n_estimators": 5, "n_jobs": 1}}
    x0 = table.set_index("track_id").loc[train, ["a", "b"]].to_numpy(np.float32)
    x, y_aug = augmented_training_set(x0, y, train, degraded, params, ["a", "b"])
    assert x.shape == (18, 2) and list(y_aug) == list(y) * 3
    positions = [ids.index(t) for t in train]
    assert sorted(x[:, 0]) == sorted([p + off for off in (0, 100, 200) for p in positions])
    # nothing of a validation or test track: 3, 4, 8, 9 (+100, +200) never appear
    assert not set(x[:, 0]) & {p + off for p in (3, 4, 8, 9) for off in (0, 100, 200)}
    model, info = train_model(table, split, params, GENRES, 0, degraded)
    assert info["n_train"] == 18
    assert train_model(table, split, {**params, "augment": []}, GENRES, 0)[1]["n_train"] == 6

    with pytest.raises(ValueError,
                       match="rf.augment needs the 'resample_16k'.*augmentation.degradations"):
        augmented_training_set(x0, y, train, degraded, {**params, "augment": ["resample_16k"]},
                               ["a", "b"])
    with pytest.raises(ValueError, match="augmentation.degradations"):
        train_model(table, split, params, GENRES, 0)  # no degraded table given
    with pytest.raises(ValueError, match="lowpass"):
        augmented_training_set(x0, y, train, degraded, params, None)  # a spectrogram model


def test_a_band_limited_model_reads_and_is_evaluated_on_its_chain_copy():
    ids = [f"{g}.{i:05d}" for g in GENRES[:2] for i in range(5)]
    genre = [i.split(".")[0] for i in ids]
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"track_id": ids, "genre": genre, "a": rng.normal(size=10),
                          "b": rng.normal(size=10)})
    low = table.assign(degradation="resample_8k", a=[0.0 if g == GENRES[0] else 1.0
                                                      for g in genre], b=0.0)
    degraded = pd.concat([low, table.assign(degradation="mp3")])
    split = pd.DataFrame({"track_id": ids, "genre": genre,
                          "split": (["train"] * 3 + ["val", "test"]) * 2})
    params = {"name": "rf_robust", "kind": "random_forest", "input_degradation": "resample_8k",
              "random_forest": {"n_estimators": 5, "n_jobs": 1}}
    model, info = train_model(table, split, params, GENRES, 0, degraded)
    assert model.input_spec_["degradation"] == "resample_8k"  # what the service applies
    # trained on the chain copy: feature a alone separates the genres there
    assert model.named_steps["forest"].feature_importances_[0] == pytest.approx(1.0)
    metrics, _, predictions, _, _ = evaluate_model(model, table, split, info, params, GENRES,
                                                   degraded)
    assert metrics["accuracy"] == 1.0 and metrics["n_test"] == 2
    with pytest.raises(ValueError, match="'resample_16k'.*augmentation.degradations"):
        train_model(table, split, {**params, "input_degradation": "resample_16k"}, GENRES, 0,
                    degraded)
    # a Keras model cannot carry the chain in its file: it goes into the run's metrics
    mlp = {"name": "mlp", "kind": "keras_mlp", "input_degradation": "resample_8k",
           "hidden_units": [8], "epochs": 60, "verbose": 0, "batch_size": 2,
           "optimizer": {"learning_rate": 0.05}, "early_stopping": {"enabled": False}}
    model, info = train_model(table, split, mlp, GENRES, 0, degraded)
    metrics, *_ = evaluate_model(model, table, split, info, mlp, GENRES, degraded)
    assert metrics["input_spec"] == {"columns": ["a", "b"], "rich_segment_s": None,
                                     "degradation": "resample_8k"}
    assert metrics["accuracy"] == 1.0  # separable in the chain copy only
    with pytest.raises(ValueError, match="feature tables only"):
        train_model(SpectrogramSet(np.array(ids), np.zeros((10, 4, 8), np.float16)), split,
                    {**mlp, "kind": "keras_cnn"}, GENRES, 0, degraded)


def test_the_service_applies_a_keras_models_chain_from_its_metrics():
    """The service reads a Keras model's input spec from its metrics and computes exactly the
    degraded_features row: the 57 reference columns of the rich features of the 8 kHz copy."""
    from music_genre import inference

    params = audio.ExtractionParams(duration_s=6.0)
    sr = params.sample_rate
    t = np.arange(6 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.float32)
    spec = {"columns": list(audio.FEATURE_NAMES), "rich_segment_s": 3.0,
            "degradation": "resample_8k"}
    loaded = inference.LoadedModel("mlp", object(), metrics={"input_spec": spec})
    got = inference.input_builder("mlp").build(y, params, loaded).x
    expected = audio.rich_features(audio.degrade(y, sr, "resample_8k"), params, 3.0)[:57]
    np.testing.assert_array_equal(got, expected[None].astype(np.float32))
    # the 6 kHz tone is gone: the centroid is that of the 440 Hz one
    full = inference.input_builder("mlp").build(y, params, inference.LoadedModel("mlp", object()))
    centroid = audio.FEATURE_NAMES.index("spectral_centroid_mean")
    assert got[0, centroid] < 1000 < full.x[0, centroid]
