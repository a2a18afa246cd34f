"""Raw audio → manifest, features, spectrograms and the track-level split."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
