"""MusiCNN input and embeddings: pure functions shared by the pipeline and the API.

Input recipe (musicnn/extractor.py ``batch_data``): 16 kHz mono, power mel spectrogram from
librosa (n_fft 512, hop 256, 96 bands, Slaney mel, centred frames), ``log10(10000·x + 1)``,
cut into consecutive non-overlapping patches of 187 frames (3 s).

**Compression in float32.** musicnn casts the mel spectrogram to float16 before the compression;
under numpy 2 (NEP 50) ``10000 * float16_array`` stays float16 and overflows to ``inf`` wherever
the mel power exceeds 6.55, i.e. on every loud track. Every such track then gets the same
(saturated) embedding and the classifier drops to chance. Here the compression is computed in
float32 (no overflow below 3.4e34 power).

**Short clips** (2-3 s excerpts, short uploads): a clip shorter than one 3 s patch is looped up
to one patch (:func:`patches`; musicnn's training "repeat-pad"), so it is one patch like any
other.

**Features of a track** (:func:`feature_row`, shared by the embedding node and the service): per
3 s patch, the chosen outputs (``features``: ``embedding``, ``tags``, ``tags_logit``) of every
network, side by side, and optionally a tag-name genre prior (:class:`FeatureSpec`); then either their mean over the patches
(``pooling: mean``, one vector) or every patch kept (``pooling: patch``, ``p00_…`` … one block
per patch, NaN where a track has fewer), for a head that learns from patches
(:mod:`music_genre.transfer.head`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187


@dataclass(frozen=True)
class EmbedParams:
    """Every knob of the embedding; built from ``params:transfer.embedding``."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP
    n_mels: int = N_MELS
    patch_frames: int = PATCH_FRAMES
    patch_hop: int = PATCH_FRAMES  # frames between patch starts; 187 = no overlap
    duration_s: float | None = 30.0  # analyse the first duration_s seconds (None = all)
    batch_size: int = 32

    @property
    def max_patches(self) -> int:
        """Patches in ``duration_s`` of audio (10 for 30 s): the width of a ``pooling: patch``
        row."""
        if not self.duration_s:
            raise ValueError("musicnn.embedding.duration_s is null: set it (e.g. 30.0) to keep "
                             "every patch of a track (musicnn.pooling: patch)")
        frames = 1 + int(round(self.duration_s * self.sample_rate)) // self.hop_length
        return max(1, (frames - self.patch_frames) // self.patch_hop + 1)

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> EmbedParams:
        params = dict(params or {})
        return cls(**{k: v for k, v in params.items() if k in cls.__dataclass_fields__})


def log_mel(y: np.ndarray, params: EmbedParams = EmbedParams()) -> np.ndarray:
    """(frames, n_mels) float32 ``log10(10000·mel + 1)`` of a 16 kHz mono signal."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    mel = librosa.feature.melspectrogram(
        y=y, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
        n_mels=params.n_mels,
    )  # fmt: skip
    mel = mel.T.astype(np.float32)  # float32, NOT float16: see the module docstring
    return np.log10(np.float32(10000.0) * mel + np.float32(1.0)).astype(np.float32)


def patches(spec: np.ndarray, params: EmbedParams = EmbedParams()) -> np.ndarray:
    """Cut a (frames, n_mels) spectrogram into (N, patch_frames, n_mels) patches.

    Consecutive patches start every ``patch_hop`` frames; a trailing remainder shorter than a
    patch is dropped (as musicnn does). A clip shorter than one patch is looped up to one patch
    (musicnn's training used "repeat-pad" for short clips).
    """
    n = params.patch_frames
    if spec.shape[0] == 0:
        raise ValueError("empty spectrogram: the clip has no audio")
    if spec.shape[0] < n:
        spec = np.pad(spec, ((0, n - spec.shape[0]), (0, 0)), mode="wrap")
    starts = range(0, spec.shape[0] - n + 1, params.patch_hop)
    return np.stack([spec[s : s + n] for s in starts]).astype(np.float32, copy=False)


def musicnn_input(y_16k: np.ndarray, params: EmbedParams = EmbedParams()) -> np.ndarray:
    """Patches (N, 187, 96) float32 of a 16 kHz mono signal: the network's input."""
    y = np.asarray(y_16k, dtype=np.float32)
    if params.duration_s:
        y = y[: int(round(params.duration_s * params.sample_rate))]
    return patches(log_mel(y, params), params)


def run_patches(model, x: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(tags (N, 50), embeddings (N, 200)) of the patches, in inference mode.

    ``predict_on_batch`` runs a compiled graph: ~40 % faster than an eager call on 2 cores.
    """
    tags, embs = [], []
    for start in range(0, len(x), batch_size):
        t, e = model.predict_on_batch(x[start : start + batch_size])
        tags.append(np.asarray(t))
        embs.append(np.asarray(e))
    return np.concatenate(tags), np.concatenate(embs)


def embed_signal(
    model, y_16k: np.ndarray, params: EmbedParams = EmbedParams()
) -> dict[str, np.ndarray]:
    """Track-level output: ``embedding`` (200,) and ``tags`` (50,), means over the 3 s patches."""
    tags, embs = run_patches(model, musicnn_input(y_16k, params), params.batch_size)
    return {
        "embedding": embs.mean(axis=0, dtype=np.float64).astype(np.float32),
        "tags": tags.mean(axis=0, dtype=np.float64).astype(np.float32),
        "n_patches": np.int64(len(embs)),
    }


def load_16k(source: str | os.PathLike | bytes, params: EmbedParams = EmbedParams()) -> np.ndarray:
    """Decode with the project's shared audio module, resampled to 16 kHz mono float32."""
    from music_genre.audio import load_audio

    return load_audio(source, sr=params.sample_rate)


def embed_file(
    model, path: str | os.PathLike, params: EmbedParams = EmbedParams()
) -> dict[str, np.ndarray]:
    """:func:`embed_signal` of an audio file, with the time it took (``seconds``)."""
    t0 = time.perf_counter()
    out = embed_signal(model, load_16k(Path(path), params), params)
    out["seconds"] = np.float64(time.perf_counter() - t0)
    return out


FEATURE_KINDS = ("embedding", "embedding_l2", "tags", "tags_logit")
POOLINGS = ("mean", "patch")
PRIOR_AGGREGATES = ("mean", "max")


@dataclass(frozen=True)
class FeatureSpec:
    """What a track's model input is made of; built from ``params:musicnn``.

    ``features``: per network, the outputs used (side by side, networks in order); a network
    may contribute none (it is there for the prior). ``prior``: per genre, the tags
    (``(network, tag)``) whose mean probability is the genre's prior score, appended as the last
    ``len(prior)`` columns of every patch vector (a genre without tags gets the mean of the
    others' scores); :class:`music_genre.transfer.head.PatchAveragingClassifier` multiplies it
    into the head's probabilities. ``prior_aggregate``: a genre's score is the ``mean`` or the
    ``max`` of its tags' probabilities.
    """

    networks: tuple[str, ...] = ("MSD_musicnn",)  # the first is ``musicnn.weights``
    features: tuple[tuple[str, ...], ...] = (("embedding",),)  # per network
    pooling: str = "mean"  # mean: one vector per track | patch: every patch
    prior: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    prior_aggregate: str = "mean"

    @classmethod
    def from_dict(cls, musicnn: Mapping[str, Any] | None) -> FeatureSpec:
        from music_genre.transfer.musicnn import TAGS

        musicnn = dict(musicnn or {})
        nets = (str(musicnn.get("weights", "MSD_musicnn")),
                *(str(n) for n in musicnn.get("extra_networks") or ()))  # fmt: skip
        if len(set(nets)) != len(nets):
            raise ValueError(f"params:musicnn.extra_networks repeats a network: {list(nets)}")
        unknown_nets = [n for n in nets if n not in TAGS]
        if unknown_nets:
            raise ValueError(f"params:musicnn: unknown network(s) {unknown_nets}; use "
                             f"{list(TAGS)}")
        raw = musicnn.get("features") or ["embedding"]
        if isinstance(raw, Mapping):
            stray = sorted(set(raw) - set(nets))
            if stray:
                raise ValueError(f"params:musicnn.features names {stray}, which are not "
                                 "musicnn.weights or musicnn.extra_networks")
            features = tuple(tuple(str(f) for f in raw.get(n) or ()) for n in nets)
        else:
            features = tuple(tuple(str(f) for f in raw) for _ in nets)
        used = {f for fs in features for f in fs}
        if used - set(FEATURE_KINDS) or not used:
            raise ValueError(f"params:musicnn.features={raw}: use one or more of "
                             f"{list(FEATURE_KINDS)} (a list, or one per network)")
        pooling = str(musicnn.get("pooling", "mean"))
        if pooling not in POOLINGS:
            raise ValueError(f"params:musicnn.pooling={pooling!r}: use one of {list(POOLINGS)}")
        prior = []
        for genre, tags in (musicnn.get("genre_prior") or {}).items():
            pairs = []
            for item in tags or ():
                net, _, tag = str(item).partition(":")
                if net not in nets or tag not in TAGS[net]:
                    raise ValueError(
                        f"params:musicnn.genre_prior.{genre}: {item!r} is not '<network>:<tag>' "
                        f"with a network of {list(nets)} and one of its tags")
                pairs.append((net, tag))
            prior.append((str(genre), tuple(pairs)))
        if prior and not any(pairs for _, pairs in prior):
            raise ValueError("params:musicnn.genre_prior names no tag at all")
        aggregate = str(musicnn.get("genre_prior_aggregate", "mean"))
        if aggregate not in PRIOR_AGGREGATES:
            raise ValueError(f"params:musicnn.genre_prior_aggregate={aggregate!r}: use one of "
                             f"{list(PRIOR_AGGREGATES)}")
        return cls(nets, features, pooling, tuple(prior), aggregate)

    @property
    def prior_genres(self) -> list[str]:
        return [g for g, _ in self.prior]

    def columns(self, dims: Mapping[str, int], max_patches: int) -> list[str]:
        """Column names of a feature row (``dims``: embedding width per network)."""
        names = []
        for net, kinds in zip(self.networks, self.features, strict=True):
            for kind in kinds:
                width = dims[net] if kind.startswith("embedding") else 50
                names += [f"{net}.{kind}_{i:03d}" for i in range(width)]
        names += [f"prior.{g}" for g in self.prior_genres]
        if self.pooling == "mean":
            return names
        return [f"p{j:02d}.{n}" for j in range(max_patches) for n in names]


def prior_scores(outputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 spec: FeatureSpec) -> np.ndarray:
    """(n_patches, genres) unnormalised prior: per genre the mean (``spec.prior_aggregate``:
    or the max) probability of its tags."""
    from music_genre.transfer.musicnn import TAGS

    cols: list[np.ndarray | None] = []
    for _, pairs in spec.prior:
        if not pairs:
            cols.append(None)
            continue
        aggregate = np.max if spec.prior_aggregate == "max" else np.mean
        cols.append(aggregate([np.asarray(outputs[net][0], np.float64)[:, TAGS[net].index(tag)]
                               for net, tag in pairs], axis=0))  # fmt: skip
    known = np.mean([c for c in cols if c is not None], axis=0)
    return np.stack([known if c is None else c for c in cols], axis=1).astype(np.float32)


def patch_vectors(outputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  spec: FeatureSpec) -> np.ndarray:
    """(n_patches, D) float32: per patch, the features of each network side by side, then the
    prior scores (:func:`prior_scores`) if ``spec.prior``.

    ``outputs[net] = (tags (n, 50), embedding (n, d))``. ``embedding_l2`` is the embedding of
    every patch scaled to unit length (its direction only: the head then sees no per-recording
    scale). ``tags_logit`` is log(p / (1 - p)) with p clipped to [1e-4, 1 - 1e-4] (the sigmoid's
    input, unsaturated).
    """
    blocks = []
    for net, kinds in zip(spec.networks, spec.features, strict=True):
        tags, emb = outputs[net]
        for kind in kinds:
            if kind == "embedding":
                blocks.append(np.asarray(emb, np.float32))
            elif kind == "embedding_l2":
                e = np.asarray(emb, np.float64)
                e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-9)
                blocks.append(e.astype(np.float32))
            elif kind == "tags":
                blocks.append(np.asarray(tags, np.float32))
            else:
                p = np.clip(np.asarray(tags, np.float64), 1e-4, 1 - 1e-4)
                blocks.append(np.log(p / (1 - p)).astype(np.float32))
    if spec.prior:
        blocks.append(prior_scores(outputs, spec))
    return np.hstack(blocks)


def feature_row(vectors: np.ndarray, spec: FeatureSpec, max_patches: int) -> np.ndarray:
    """A track's model input from its (n_patches, D) :func:`patch_vectors`: their mean (D,),
    or (``pooling: patch``) the first ``max_patches`` patches side by side, NaN-padded."""
    vectors = np.asarray(vectors, np.float32)
    if spec.pooling == "mean":
        return vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    row = np.full((max_patches, vectors.shape[1]), np.nan, np.float32)
    n = min(len(vectors), max_patches)
    row[:n] = vectors[:n]
    return row.reshape(-1)


def network_outputs(network, x: np.ndarray, names: Sequence[str],
                    batch_size: int = 32) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{net: (tags, embedding)}`` of patches ``x`` through ``network`` (one pretrained network,
    outputs ``[tags, embedding]``, or :func:`music_genre.transfer.musicnn.combined_network` of
    several: ``[tags_0, emb_0, tags_1, emb_1, ...]`` in ``names`` order)."""
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(x), batch_size):
        out = network.predict_on_batch(x[start : start + batch_size])
        chunks.append([np.asarray(o) for o in out])
    arrays = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    if len(arrays) < 2 * len(names):
        raise ValueError(f"the network has {len(arrays)} outputs; {list(names)} need "
                         f"{2 * len(names)}: is musicnn_network exported with these networks?")
    return {n: (arrays[2 * i], arrays[2 * i + 1]) for i, n in enumerate(names)}
