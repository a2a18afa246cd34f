"""Model training and evaluation: one template, one namespace per model."""

from .pipeline import MODELS, create_pipeline, model_pipeline, template

__all__ = ["MODELS", "create_pipeline", "model_pipeline", "template"]
