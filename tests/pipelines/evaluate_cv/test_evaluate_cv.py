"""``kedro run --pipeline evaluate_cv`` on the tiny demo: rich and degraded tables, folds of
every scheme, fold metrics recomputed from the out-of-fold predictions, the CV ensemble, the
summary and the fold cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from music_genre import audio
from music_genre.demo import GENRES
from music_genre.pipelines.evaluate_cv.nodes import summarise_cv
from tests.helpers import TINY, latest, make_project, run

pytestmark = pytest.mark.slow  # two Kedro sessions that train every fold



@pytest.mark.slow  # two Kedro sessions that train every fold
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


def test_summary_pools_each_track_once_and_draws_chance_at_one_over_the_genres():
    genres = ["blues", "jazz", "metal"]
    ids = [f"{g}.{i:05d}" for g in genres for i in range(4)]
    truth = [i.split(".")[0] for i in ids]
    rows = []
    for repeat in (0, 1):  # a repeat re-tests the same tracks: no new evidence
        for k, (track, genre) in enumerate(zip(ids, truth)):
            hit = k % 4 != 0  # 9 of 12 tracks right
            rows.append({"model": "rf", "scheme": "grouped", "repeat": repeat, "fold": k % 2,
                         "track_id": track, "genre": genre,
                         "predicted": genre if hit else genres[(genres.index(genre) + 1) % 3]})
    oof = pd.DataFrame(rows)
    fold_metrics = pd.DataFrame([{"model": "rf", "scheme": "grouped", "repeat": r, "fold": f,
                                  "accuracy": 0.75, "f1_macro": 0.7, "n_test": 6,
                                  "train_seconds": 1.0} for r in (0, 1) for f in (0, 1)])
    summary, markdown, chart = summarise_cv(fold_metrics, oof, genres)
    row = summary.iloc[0]
    assert row["n_tracks"] == 12 and row["accuracy_pooled"] == pytest.approx(0.75)
    assert row["accuracy_ci95_low"] < 0.75 < row["accuracy_ci95_high"]
    assert "| rf | grouped |" in markdown
    (chance,) = [line for line in chart.axes[0].get_lines()
                 if line.get_label() == "chance (1/3)"]
    assert np.allclose(chance.get_ydata(), 1 / 3)
