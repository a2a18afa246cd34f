"""The reporting pipeline: the comparison table in the ranking's order, its Markdown and its
charts (the chance line at 1/len(genres))."""

from __future__ import annotations

import numpy as np
import pytest

from music_genre import roster
from music_genre.pipelines.reporting import create_pipeline
from music_genre.pipelines.reporting.nodes import compare_models

GENRES = ["blues", "classical", "jazz", "metal"]


def metrics(name: str, accuracy: float) -> dict:
    return {"model": name, "accuracy": accuracy, "precision_macro": accuracy,
            "recall_macro": accuracy, "f1_macro": accuracy - 0.05, "f1_weighted": accuracy,
            "train_seconds": 1.5, "inference_ms_per_track": 2.0, "n_train": 60, "n_test": 20,
            "per_genre": {g: {"f1": accuracy} for g in GENRES}}


def test_table_follows_the_ranking_and_the_chance_line_is_one_over_the_genres():
    ranking = {"default": "mlp", "ranking": [
        {"model": "mlp", "grouped": {"accuracy": 0.7, "ci95": [0.6, 0.8], "n": 100}},
        {"model": "rf", "grouped": {"accuracy": 0.5, "ci95": [0.4, 0.6], "n": 100}}]}
    # rf has the better test split, mlp the better grouped figure: mlp comes first
    table, markdown, bars, per_genre = compare_models(ranking, metrics("rf", 0.9),
                                                      metrics("mlp", 0.6))
    assert list(table["model"]) == ["mlp", "rf"] and list(table["grouped_accuracy"]) == [0.7, 0.5]
    assert "| mlp (default) | 70.0 % [60, 80] | – | 60.0 % | 0.550 |" in markdown
    assert "(20 tracks, same artists as training: optimistic)" in markdown
    ax = bars.axes[0]
    chance = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
    assert len(chance) == 1 and chance[0].get_label() == "chance (1/4)"
    assert np.allclose(chance[0].get_ydata(), 1 / len(GENRES))
    # per-genre F1: one bar per genre and model
    assert len(per_genre.axes[0].patches) == len(GENRES) * 2


@pytest.mark.parametrize("n", [2, 10])
def test_the_chance_line_follows_the_number_of_genres(n):
    genres = [f"g{i}" for i in range(n)]
    m = {**metrics("rf", 0.8), "per_genre": {g: {"f1": 0.8} for g in genres}}
    _, _, bars, _ = compare_models({}, m)
    (chance,) = [line for line in bars.axes[0].get_lines() if line.get_label().startswith("chance")]
    assert np.allclose(chance.get_ydata(), 1 / n)


def test_every_model_of_the_roster_is_reported():
    pipeline = create_pipeline()
    assert {f"{m}.metrics" for m in roster.names()} | {"model_selection"} == pipeline.inputs()
