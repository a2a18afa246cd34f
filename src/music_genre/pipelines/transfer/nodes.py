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
from music_genre.transfer.embed import EmbedParams, load_16k

# The width of MusiCNN's embedding (music_genre.transfer.musicnn.EMBEDDING_DIM, checked when the
# network is loaded). Not imported from there: that module imports Keras, and this one is imported
# by every `kedro run` when the pipelines are registered (TensorFlow's import then cost every run
# seconds and came before MLflow's autolog hook could find it whole: see tracking.py).
EMBEDDING_DIM = 200

logger = logging.getLogger(__name__)

#: Bump when the embedding computation changes in a way the parameters do not capture.
EMBED_CODE_VERSION = 1
EMBEDDING_COLUMNS = [f"emb_{i:03d}" for i in range(EMBEDDING_DIM)]


def cache_key(path: str, musicnn: dict[str, Any]) -> str:
    """Hash of the audio bytes, the embedding parameters and the exact weights (wheel sha256)."""
    params = EmbedParams.from_dict(musicnn.get("embedding"))
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    recipe = {"embedding": params.__dict__, "weights": musicnn.get("weights", "MSD_musicnn"),
              "wheel_sha256": weights.WHEEL_SHA256, "code": EMBED_CODE_VERSION}  # fmt: skip
    recipe["embedding"] = {k: v for k, v in recipe["embedding"].items() if k != "batch_size"}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def load_network(musicnn: dict[str, Any]):
    """The pretrained network named in ``params:musicnn`` (weights fetched on first use)."""
    from music_genre.transfer import musicnn as net

    if net.EMBEDDING_DIM != EMBEDDING_DIM:  # the constant repeated above
        raise RuntimeError(f"transfer nodes: EMBEDDING_DIM {EMBEDDING_DIM} != the network's "
                           f"{net.EMBEDDING_DIM}")
    return net.load_musicnn(
        musicnn.get("weights", "MSD_musicnn"),
        cache_dir=musicnn.get("cache_dir"),
        index_url=musicnn.get("index_url"),
    )


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
    usable = manifest[manifest["status"].astype(str) == "ok"]
    paths = usable["path"].astype(str).to_numpy()
    keys = [cache_key(p, musicnn) for p in paths]
    todo = [(k, p) for k, p in zip(keys, paths, strict=True) if k not in previous_cache]
    logger.info("MusiCNN embeddings: %d usable tracks, %d cached, %d to embed",
                len(paths), len(paths) - len(todo), len(todo))  # fmt: skip
    new_entries: dict[str, dict[str, Any]] = {}
    if todo:
        net = feature_model(load_network(musicnn))
        start = time.perf_counter()
        for key, path in tqdm(todo, desc="embed (MusiCNN)", unit="track",
                              disable=not execution.get("progress", True)):  # fmt: skip
            try:
                entry = track_entry(net, load_16k(path, params), params)
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


def assemble_embeddings(
    manifest: pd.DataFrame, keys: pd.DataFrame, cache: TrackCache, musicnn: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The embedding table (``track_id``, ``genre``, ``emb_000`` … ``emb_199``): the model input,
    and the mean tag table (``track_id``, ``genre``, one column per tag) for reports."""
    from music_genre.transfer.musicnn import TAGS

    tag_names = TAGS[musicnn.get("weights", "MSD_musicnn")]
    genre_of = dict(zip(manifest["track_id"].astype(str), manifest["genre"].astype(str),
                        strict=False))  # fmt: skip
    ids, genres, embs, tags, excluded = [], [], [], [], []
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
    return embeddings, tag_table


def export_network(musicnn: dict[str, Any]):
    """The pretrained MusiCNN as a ``.keras`` artifact: what the API embeds with."""
    return load_network(musicnn)
