"""``download``: fetch, verify and extract GTZAN (``kedro run --pipeline download``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
