"""Nodes of the ``transfer`` pipeline: cached MusiCNN embeddings, the network for serving.

Training and evaluation are the shared template (:mod:`music_genre.pipelines.training`); the
optional fine-tuning of MusiCNN's top lives in :mod:`music_genre.pipelines.transfer_finetune`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from music_genre.audio import AudioError
from music_genre.datasets import TrackCache
from music_genre.transfer import weights
from music_genre.transfer.embed import (
    EmbedParams,
    FeatureSpec,
    feature_row,
    load_16k,
    musicnn_input,
    network_outputs,
    patch_vectors,
)

# The width of MusiCNN's embedding (music_genre.transfer.musicnn.EMBEDDING_DIM, checked when the
# network is loaded). Not imported from there: that module imports Keras, and this one is imported
# by every `kedro run` when the pipelines are registered (TensorFlow's import then cost every run
# seconds and came before MLflow's autolog hook could find it whole: see tracking.py).
EMBEDDING_DIM = 200

logger = logging.getLogger(__name__)

#: Bump when the embedding computation changes in a way the parameters do not capture.
EMBED_CODE_VERSION = 2  # 2: per-patch tags, extra networks
EMBEDDING_COLUMNS = [f"emb_{i:03d}" for i in range(EMBEDDING_DIM)]


def cache_key(path: str, musicnn: dict[str, Any]) -> str:
    """Hash of the audio bytes, the embedding parameters and the exact weights (wheel sha256)."""
    params = EmbedParams.from_dict(musicnn.get("embedding"))
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    recipe = {"embedding": params.__dict__, "networks": list(FeatureSpec.from_dict(musicnn).networks),
              "wheel_sha256": weights.WHEEL_SHA256, "code": EMBED_CODE_VERSION}  # fmt: skip
    recipe["embedding"] = {k: v for k, v in recipe["embedding"].items() if k != "batch_size"}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def load_network(musicnn: dict[str, Any], name: str | None = None):
    """The pretrained network ``name`` (default ``params:musicnn.weights``; weights fetched on
    first use)."""
    from music_genre.transfer import musicnn as net
    from music_genre.transfer.musicnn import load_musicnn

    if net.EMBEDDING_DIM != EMBEDDING_DIM:  # the constant repeated above
        raise RuntimeError(f"transfer nodes: EMBEDDING_DIM {EMBEDDING_DIM} != the network's "
                           f"{net.EMBEDDING_DIM}")

    return load_musicnn(
        name or musicnn.get("weights", "MSD_musicnn"),
        cache_dir=musicnn.get("cache_dir"),
        index_url=musicnn.get("index_url"),
    )


def _extra_key(net: str, what: str) -> str:
    return f"{net}__{what}"


def embed_tracks(
    manifest: pd.DataFrame,
    previous_cache: TrackCache,
    musicnn: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    """MusiCNN outputs of every usable track not already in the cache.

    Incremental like feature extraction: the key hashes the audio and the recipe, so unchanged
    tracks are never embedded twice (and a fully cached run needs neither the network nor the
    weights). The network runs in-process, batched; TensorFlow uses every core itself.
    """
    from music_genre.transfer.finetune import feature_model, track_entry

    params = EmbedParams.from_dict(musicnn.get("embedding"))
    extra_names = FeatureSpec.from_dict(musicnn).networks[1:]
    usable = manifest[manifest["status"].astype(str) == "ok"]
    paths = usable["path"].astype(str).to_numpy()
    keys = [cache_key(p, musicnn) for p in paths]
    todo = [(k, p) for k, p in zip(keys, paths, strict=True) if k not in previous_cache]
    logger.info("MusiCNN embeddings: %d usable tracks, %d cached, %d to embed",
                len(paths), len(paths) - len(todo), len(todo))  # fmt: skip
    new_entries: dict[str, dict[str, Any]] = {}
    if todo:
        net = feature_model(load_network(musicnn))
        extras = {name: load_network(musicnn, name) for name in extra_names}
        start = time.perf_counter()
        for key, path in tqdm(todo, desc="embed (MusiCNN)", unit="track",
                              disable=not execution.get("progress", True)):  # fmt: skip
            try:
                y = load_16k(path, params)
                entry = track_entry(net, y, params)
                if extras:
                    x = musicnn_input(y, params)
                    for name, extra in extras.items():
                        tags, emb = network_outputs(extra, x, [name], params.batch_size)[name]
                        entry[_extra_key(name, "patch_tags")] = tags.astype(np.float32)
                        entry[_extra_key(name, "patch_embedding")] = emb.astype(np.float32)
                entry.update(status=np.array("ok"), reason=np.array(""))
            except (AudioError, ValueError) as exc:
                entry = {"status": np.array("excluded"), "reason": np.array(f"{path}: {exc}")}
            new_entries[key] = entry
        elapsed = time.perf_counter() - start
        logger.info("Embedded %d tracks in %.1f s (%.0f ms per track)",
                    len(todo), elapsed, 1000 * elapsed / len(todo))  # fmt: skip
    keys_table = pd.DataFrame({"track_id": usable["track_id"].astype(str).to_numpy(),
                               "cache_key": np.asarray(keys, dtype=str)})  # fmt: skip
    return new_entries, keys_table


def patch_outputs(entry: dict[str, Any], spec: FeatureSpec) -> dict[str, tuple[Any, Any]]:
    """``{network: (patch tags, patch embeddings)}`` of one cache entry."""
    out = {spec.networks[0]: (entry["patch_tags"], entry["patch_embedding"])}
    for name in spec.networks[1:]:
        out[name] = (entry[_extra_key(name, "patch_tags")],
                     entry[_extra_key(name, "patch_embedding")])  # fmt: skip
    return out


def check_head(musicnn: dict[str, Any], transfer: dict[str, Any], genres: list[str]) -> None:
    """The head and the feature layout must agree (``musicnn.pooling`` vs ``transfer.n_patches``,
    ``musicnn.genre_prior`` vs ``transfer.genre_prior`` and ``params:genres``)."""
    spec = FeatureSpec.from_dict(musicnn)
    columns = int((transfer.get("genre_prior") or {}).get("columns") or 0)
    if spec.prior:
        if spec.prior_genres != list(genres):
            raise ValueError(f"params:musicnn.genre_prior lists {spec.prior_genres}; it must list "
                             f"params:genres in that order: {list(genres)}")
        if spec.pooling != "patch" or columns != len(spec.prior):
            raise ValueError(
                f"params:musicnn.genre_prior needs musicnn.pooling: patch and "
                f"transfer.genre_prior.columns: {len(spec.prior)} (got pooling={spec.pooling!r}, "
                f"columns={columns})")
    elif columns:
        raise ValueError(f"params:transfer.genre_prior.columns={columns} but "
                         "params:musicnn.genre_prior is empty; set columns: 0")
    n = transfer.get("n_patches")
    if spec.pooling == "patch":
        expected = EmbedParams.from_dict(musicnn.get("embedding")).max_patches
        if transfer.get("kind") != "logistic_regression" or n != expected:
            raise ValueError(
                f"params:musicnn.pooling is 'patch' ({expected} patches per track): the head must "
                f"be params:transfer.kind=logistic_regression with transfer.n_patches={expected} "
                f"(got kind={transfer.get('kind')!r}, n_patches={n!r}); or set pooling: mean")
    elif n:
        raise ValueError(f"params:transfer.n_patches={n} needs params:musicnn.pooling: patch "
                         "(it is 'mean'); set transfer.n_patches: null")


def assemble_embeddings(
    manifest: pd.DataFrame, keys: pd.DataFrame, cache: TrackCache, musicnn: dict[str, Any],
    transfer: dict[str, Any], genres: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per track: the mean embedding table (``track_id``, ``genre``, ``emb_000`` … ``emb_199``),
    the mean tag table (one column per tag, for reports), and the model input
    (``musicnn_features``: :func:`music_genre.transfer.embed.feature_row` of the cached patches,
    the very function the service calls)."""
    check_head(musicnn, transfer, genres)
    spec = FeatureSpec.from_dict(musicnn)
    max_patches = EmbedParams.from_dict(musicnn.get("embedding")).max_patches \
        if spec.pooling == "patch" else 1
    from music_genre.transfer.musicnn import EMBEDDING_DIMS, TAGS

    tag_names = TAGS[spec.networks[0]]
    genre_of = dict(zip(manifest["track_id"].astype(str), manifest["genre"].astype(str),
                        strict=False))  # fmt: skip
    ids, genres, embs, tags, rows, excluded = [], [], [], [], [], []
    for track_id, key in zip(keys["track_id"].astype(str), keys["cache_key"].astype(str),
                             strict=True):  # fmt: skip
        entry = cache[key]
        if str(entry["status"]) != "ok":
            excluded.append(str(entry["reason"]))
            continue
        ids.append(track_id)
        genres.append(genre_of[track_id])
        embs.append(entry["embedding"])
        tags.append(entry["tags"])
        rows.append(feature_row(patch_vectors(patch_outputs(entry, spec), spec), spec,
                                max_patches))  # fmt: skip
    if excluded:
        logger.warning("%d track(s) without an embedding:\n  - %s", len(excluded),
                       "\n  - ".join(excluded))  # fmt: skip
    if not ids:
        raise ValueError("no track could be embedded (see the warning above)")
    head = pd.DataFrame({"track_id": ids, "genre": genres})
    embeddings = pd.concat(
        [head, pd.DataFrame(np.stack(embs).astype(np.float32), columns=EMBEDDING_COLUMNS)], axis=1
    )
    tag_table = pd.concat(
        [head, pd.DataFrame(np.stack(tags).astype(np.float32), columns=tag_names)], axis=1
    )
    if not np.isfinite(embeddings[EMBEDDING_COLUMNS].to_numpy()).all():
        raise ValueError("non-finite MusiCNN embeddings: the input compression overflowed")
    columns = spec.columns(EMBEDDING_DIMS, max_patches)
    features = pd.concat([head, pd.DataFrame(np.stack(rows), columns=columns)], axis=1)
    return embeddings, tag_table, features


def export_network(musicnn: dict[str, Any]):
    """The pretrained network(s) as one ``.keras`` artifact: what the API embeds with (several
    networks: :func:`music_genre.transfer.musicnn.combined_network`)."""
    from music_genre.transfer.musicnn import combined_network

    return combined_network([load_network(musicnn, n) for n in FeatureSpec.from_dict(musicnn).networks])
