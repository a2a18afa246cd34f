"""The model_selection pipeline: the ranking by grouped CV first (then other artists, then the
test split) decides the served default; without an other-artist folder nothing is scored."""

from __future__ import annotations

import pandas as pd

from music_genre import roster
from music_genre.pipelines.model_selection import create_pipeline
from music_genre.pipelines.model_selection.nodes import evaluate_other_artists, rank_models

GENRES = ["blues", "classical", "jazz", "metal"]


def metrics(name: str, accuracy: float) -> dict:
    return {"model": name, "accuracy": accuracy, "n_test": 40}


def test_grouped_cv_outranks_the_test_split_and_the_scheme_is_a_parameter():
    cv = pd.DataFrame([
        {"model": m, "scheme": s, "n_tracks": 100, "accuracy_pooled": a,
         "accuracy_ci95_low": a - 0.1, "accuracy_ci95_high": a + 0.1}
        for m, s, a in (("rf", "grouped", 0.50), ("mlp", "grouped", 0.70),
                        ("rf", "stratified", 0.90), ("mlp", "stratified", 0.60))])
    # rf wins the test split and stratified CV; mlp wins grouped CV (whole artists held out)
    result, markdown = rank_models(cv, {}, {}, metrics("rf", 0.9), metrics("mlp", 0.6))
    assert [r["model"] for r in result["ranking"]] == ["mlp", "rf"]
    assert result["default"] == "mlp" and result["chosen_by"] == "grouped"
    assert "| 1 | mlp (served default) | 70.0 % [60.0, 80.0] (n=100) |" in markdown
    stratified, _ = rank_models(cv, {}, {"cv_scheme": "stratified"}, metrics("rf", 0.9),
                                metrics("mlp", 0.6))
    assert stratified["default"] == "rf" and stratified["cv_scheme"] == "stratified"
    # other artists break a tie of grouped figures; without any CV the split decides
    holdout = {"rf": {"accuracy": 0.4, "n": 381}, "mlp": {"accuracy": 0.3, "n": 381}}
    tied = cv.assign(accuracy_pooled=0.6)
    assert rank_models(tied, holdout, {}, metrics("rf", 0.1), metrics("mlp", 0.9))[0][
        "default"] == "rf"
    plain, _ = rank_models(pd.DataFrame(), {}, {}, metrics("rf", 0.6), metrics("mlp", 0.8))
    assert plain["default"] == "mlp" and plain["chosen_by"] == "split"


def test_without_other_artist_music_nothing_is_scored():
    table, summary = evaluate_other_artists(pd.DataFrame(), {}, {}, GENRES, {}, None, {})
    assert table.empty and summary == {}


def test_every_model_of_the_roster_is_ranked():
    pipeline = create_pipeline()
    assert {f"{m}.metrics" for m in roster.names()} <= pipeline.inputs()
    assert {f"{m}.model" for m in roster.single_models()} <= pipeline.inputs()
    assert {"model_selection", "model_selection_markdown"} <= pipeline.outputs()
