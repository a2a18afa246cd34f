"""The comparison report across all trained models."""

from .pipeline import REPORTED_MODELS, create_pipeline

__all__ = ["REPORTED_MODELS", "create_pipeline"]
