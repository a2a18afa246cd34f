"""Model training and evaluation: one template, one namespace per model."""

from .pipeline import (
    AUGMENTABLE,
    MODELS,
    create_pipeline,
    model_pipeline,
    single_model_pipeline,
    template,
)

__all__ = ["AUGMENTABLE", "MODELS", "create_pipeline", "model_pipeline",
           "single_model_pipeline", "template"]
