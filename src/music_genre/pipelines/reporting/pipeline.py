from kedro.pipeline import Node, Pipeline

from music_genre import roster

from .nodes import compare_models

# every model of the roster, the ensemble included
REPORTED_MODELS = roster.names()


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(compare_models, ["model_selection", *[f"{m}.metrics" for m in roster.names()]],
             ["comparison_table", "comparison_markdown", "comparison_chart", "per_genre_f1_chart"],
             name="compare_models"),
    ])
