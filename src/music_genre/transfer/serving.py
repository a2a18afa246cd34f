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

#: the ``params:musicnn`` keys that decide a head's input (the rest: where weights are cached)
CONTRACT_KEYS = ("weights", "extra_networks", "features", "pooling", "genre_prior",
                 "genre_prior_aggregate", "embedding", "serving")


def embedding_contract(musicnn: Mapping[str, Any]) -> dict[str, Any]:
    """What a transfer head's bundle carries (``input`` of its contract): the networks, the
    outputs used, the genre prior and the patching of ``params:musicnn`` at training time, and
    the pretrained weights' identity. The service builds its :class:`TransferService` from it."""
    from music_genre.transfer import weights

    spec = FeatureSpec.from_dict(musicnn)
    return {"musicnn": {k: musicnn[k] for k in CONTRACT_KEYS if k in musicnn},
            "networks": list(spec.networks), "wheel_sha256": weights.WHEEL_SHA256}


def contract_differences(spec: Mapping[str, Any], network: Any = None) -> list[str]:
    """Why a head's contract cannot be served here: other pretrained weights, or a network
    artifact (``musicnn_network``) that is not the networks the head was trained on."""
    from music_genre.transfer import weights

    out = []
    if spec.get("wheel_sha256") != weights.WHEEL_SHA256:
        out.append(f"MusiCNN weights sha256 {spec.get('wheel_sha256')}, this code pins "
                   f"{weights.WHEEL_SHA256}")
    if not spec.get("musicnn"):
        out.append("no params:musicnn recipe in the bundle")
    if network is not None and spec.get("networks"):
        outputs = len(getattr(network, "outputs", ()) or ())
        if outputs != 2 * len(spec["networks"]):
            out.append(f"networks {spec['networks']} ({2 * len(spec['networks'])} outputs), "
                       f"but musicnn_network has {outputs} outputs (re-exported for other "
                       "params:musicnn networks)")
    return out


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
