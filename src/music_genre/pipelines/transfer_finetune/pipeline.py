"""``kedro run --pipeline transfer_finetune``: re-train MusiCNN's back-end + a softmax layer on
the cached patch features of ``kedro run --pipeline transfer`` (run that first). Datasets follow
the model factories: ``transfer_finetune.model`` (.keras, per patch), ``.metrics``, ...
"""

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_finetune, train_finetune


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(train_finetune, ["musicnn_keys", "musicnn_cache", "split", "params:model",
                              "params:musicnn", "params:genres", "params:seed"],
             ["model", "train_info"], name="train_finetune"),
        Node(evaluate_finetune, ["model", "musicnn_keys", "musicnn_cache", "split", "train_info",
                                 "params:model", "params:genres"],
             ["metrics", "per_genre", "predictions", "confusion_matrix", "training_curves"],
             name="evaluate_finetune"),
    ], namespace="transfer_finetune",
        inputs={"musicnn_keys", "musicnn_cache", "split"},
        parameters={"params:model": "params:transfer_finetune", "params:musicnn": "params:musicnn",
                    "params:genres": "params:genres", "params:seed": "params:seed"},
    )  # fmt: skip
