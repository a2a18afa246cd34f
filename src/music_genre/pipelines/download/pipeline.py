"""``download`` pipeline: one node, ``params:download`` -> ``download_receipt``."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import download_gtzan


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                download_gtzan,
                inputs="params:download",
                outputs="download_receipt",
                name="download_gtzan",
            )
        ]
    )
