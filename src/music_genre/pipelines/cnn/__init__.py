"""`kedro run --pipeline cnn`: the cnn model with the data processing it needs."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
