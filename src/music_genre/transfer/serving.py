"""Serving the ``transfer`` model: audio → MusiCNN embedding → the trained head.

The API loads two artifacts from the catalog, ``musicnn_network`` (the pretrained network as an
ordinary ``.keras`` file: no weights download at serving time) and ``transfer.model`` (the head
trained by the shared template), and calls :meth:`TransferService.predict_proba`. The audio goes
through the same functions as the embedding node (:mod:`music_genre.transfer.embed`), so a file
gets exactly the features it would get in training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from music_genre.transfer.embed import EmbedParams, embed_signal, load_16k


@dataclass
class TransferService:
    network: Any  # keras.Model from musicnn_network: (B, T, 96) -> [tags, embedding]
    head: Any  # transfer.model: sklearn pipeline or Keras MLP on (n, 200)
    genres: Sequence[str]  # params:genres, the head's class order
    musicnn: Mapping[str, Any]  # params:musicnn (its ``embedding`` block is the recipe)

    @property
    def params(self) -> EmbedParams:
        return EmbedParams.from_dict(self.musicnn.get("embedding"))

    def features(self, source: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
        """(1, 200) model input of a file, raw bytes, or a 16 kHz mono signal."""
        y = source if isinstance(source, np.ndarray) else load_16k(source, self.params)
        return embed_signal(self.network, y, self.params)["embedding"][None, :]

    def predict_proba(self, source: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
        """Genre probabilities (len(genres),) in ``genres`` order."""
        from music_genre.models import training

        return training.predict_proba(self.head, self.features(source), len(self.genres))[0]

    def predict(self, source) -> dict[str, float]:
        proba = self.predict_proba(source)
        return {g: float(p) for g, p in zip(self.genres, proba, strict=True)}
