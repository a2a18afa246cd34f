"""The ``ensemble`` model: the trained models' test-split probabilities averaged."""

from .pipeline import ENSEMBLE_MODELS, create_pipeline

__all__ = ["ENSEMBLE_MODELS", "create_pipeline"]
