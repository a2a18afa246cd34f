from kedro.pipeline import Node, Pipeline

from music_genre.pipelines.training import MODELS

from .nodes import compare_models

# every model namespace whose metrics the comparison reads; `transfer` (pretrained MusiCNN
# embeddings) has its own pipeline package, as it first embeds the audio; `ensemble` averages
# the others' test probabilities (pipelines/ensemble)
REPORTED_MODELS = [*MODELS, "transfer", "ensemble"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(compare_models, ["model_selection", *[f"{m}.metrics" for m in REPORTED_MODELS]],
             ["comparison_table", "comparison_markdown", "comparison_chart", "per_genre_f1_chart"],
             name="compare_models"),
    ])
