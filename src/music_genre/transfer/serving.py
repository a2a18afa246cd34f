"""Serving the ``transfer`` model: audio → pretrained networks per 3 s patch → the trained head.

The API loads two artifacts from the catalog, ``musicnn_network`` (the pretrained network(s) as
one ordinary ``.keras`` file: no weights download at serving time) and ``transfer.model`` (the head
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

from music_genre.transfer.embed import (
    EmbedParams,
    FeatureSpec,
    feature_row,
    load_16k,
    musicnn_input,
    network_outputs,
    patch_vectors,
)


@dataclass
class TransferService:
    network: Any  # keras.Model from musicnn_network: (B, T, 96) -> [tags, embedding] (per network)
    head: Any  # transfer.model: sklearn pipeline / patch classifier, or a Keras MLP
    genres: Sequence[str]  # params:genres, the head's class order
    musicnn: Mapping[str, Any]  # params:musicnn (its ``embedding`` block is the recipe)

    @property
    def params(self) -> EmbedParams:
        return EmbedParams.from_dict(self.musicnn.get("embedding"))

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.musicnn)

    def features(self, source: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
        """(1, D) model input of a file, raw bytes, or a 16 kHz mono signal (its first
        ``duration_s``): the embedding node's :func:`~music_genre.transfer.embed.feature_row`."""
        params, spec = self.params, self.spec
        y = source if isinstance(source, np.ndarray) else load_16k(source, params)
        x = musicnn_input(y, params)
        outputs = network_outputs(self.network, x, spec.networks, params.batch_size)
        max_patches = params.max_patches if spec.pooling == "patch" else 1
        return feature_row(patch_vectors(outputs, spec), spec, max_patches)[None, :]

    def predict_proba(self, source: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
        """Genre probabilities (len(genres),) in ``genres`` order."""
        from music_genre.models import training

        return training.predict_proba(self.head, self.features(source), len(self.genres))[0]

    def predict(self, source) -> dict[str, float]:
        proba = self.predict_proba(source)
        return {g: float(p) for g, p in zip(self.genres, proba, strict=True)}
