"""Pretrained MusiCNN embeddings + a light classifier: the ``transfer`` model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
