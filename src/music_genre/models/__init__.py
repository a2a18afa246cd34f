"""Model builders and the uniform fit/predict interface; importing registers custom layers."""

from music_genre.models.inputs import select
from music_genre.models.training import fit, predict_proba

__all__ = ["fit", "predict_proba", "select"]
