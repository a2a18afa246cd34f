"""``kedro run --pipeline evaluate_cv``: track-level folds → CV of every variant in
``evaluate_cv.run`` (reference recipe and improved models side by side) → CV ensembles → summary.
"""

from kedro.pipeline import Node, Pipeline

from music_genre.pipelines import data_processing

from .nodes import add_cv_ensembles, cross_validate_models, make_cv_folds, summarise_cv


def create_pipeline(**kwargs) -> Pipeline:
    return data_processing.create_pipeline() + Pipeline([
        Node(make_cv_folds, ["manifest", "predefined_split", "cv_groups", "params:evaluate_cv"],
             "cv_folds", name="make_cv_folds"),
        Node(cross_validate_models,
             ["features", "rich_features", "spectrograms", "degraded_features",
              "musicnn_embeddings_latest", "cv_folds", "cv_fold_cache_previous",
              "params:evaluate_cv", "parameters", "params:genres"],
             ["cv_fold_metrics_models", "cv_predictions_models", "cv_fold_cache"],
             name="cross_validate_models"),
        Node(add_cv_ensembles, ["cv_fold_metrics_models", "cv_predictions_models",
                                "params:evaluate_cv", "params:genres"],
             ["cv_fold_metrics", "cv_predictions"], name="add_cv_ensembles"),
        Node(summarise_cv, ["cv_fold_metrics", "cv_predictions", "params:genres"],
             ["cv_summary", "cv_summary_markdown", "cv_chart"], name="summarise_cv"),
    ])  # fmt: skip
