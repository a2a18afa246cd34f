"""``kedro run --pipeline model_selection`` (part of ``kedro run``): the trained models scored on
music by other artists (``--params holdout_root=...``), then ranked by grouped cross-validation
(the latest ``evaluate_cv`` run), other artists and the test split; the first is served by
default (``model_selection`` → the API)."""

from kedro.pipeline import Node, Pipeline

from music_genre import roster


def create_pipeline(**kwargs) -> Pipeline:
    from .nodes import evaluate_other_artists, rank_models

    models = [d for m in roster.single_models() for d in (f"{m}.model", f"{m}.metrics")]
    return Pipeline([
        Node(evaluate_other_artists,
             ["holdout_audio", "params:model_selection", "params:genres", "musicnn_network",
              "ensemble.model", *models],
             ["other_artist_predictions", "other_artist_metrics"],
             name="evaluate_other_artists"),
        Node(rank_models,
             ["cv_summary_latest", "other_artist_metrics", "params:model_selection",
              *[f"{m}.metrics" for m in roster.names()]],
             ["model_selection", "model_selection_markdown"], name="rank_models"),
    ])  # fmt: skip
