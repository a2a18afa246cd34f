"""`kedro run --pipeline rf_robust`: the band-limited forest (every track, in training and in the
service, heard through an 8 kHz recording chain) with the data processing it needs."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
