"""`kedro run --pipeline rf`: the rf model with the data processing it needs."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
