"""``kedro run --pipeline model_selection``: rank the trained models by artist-disjoint evidence."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
