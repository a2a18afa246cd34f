"""`kedro run --pipeline classify --params "classify.input=~/Music"`: a trained model on a folder
of the user's own audio (also `python -m music_genre classify PATH...`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
