"""``kedro run --pipeline transfer``: MusiCNN patch outputs (cached) → the model input
``musicnn_features`` (params:musicnn.features / pooling) → the shared train/evaluate template
under the ``transfer`` namespace (datasets ``transfer.model``, ``transfer.metrics``...).
"""

from kedro.pipeline import Node, Pipeline

from music_genre import roster
from music_genre.pipelines.training import model_pipeline

from .nodes import assemble_embeddings, embed_tracks, export_network


def create_pipeline(**kwargs) -> Pipeline:
    embedding = Pipeline([
        Node(embed_tracks, ["manifest", "musicnn_cache_previous", "params:musicnn",
                            "params:execution"],
             ["musicnn_cache", "musicnn_keys"], name="embed_tracks_musicnn"),
        Node(assemble_embeddings, ["manifest", "musicnn_keys", "musicnn_cache", "params:musicnn",
                                   "params:transfer", "params:genres"],
             ["musicnn_embeddings", "musicnn_tags", "musicnn_features"],
             name="assemble_musicnn_embeddings"),
        Node(export_network, "params:musicnn", "musicnn_network", name="export_musicnn_network"),
    ])  # fmt: skip
    return embedding + model_pipeline("transfer", roster.spec("transfer").input)
