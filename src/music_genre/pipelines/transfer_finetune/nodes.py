"""Fine-tuning MusiCNN's back-end on the cached patch features; reports like every model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from music_genre.datasets import TrackCache
from music_genre.models.inputs import labels
from music_genre.models.reports import test_reports
from music_genre.pipelines.transfer.nodes import load_network
from music_genre.transfer.finetune import build_finetune_model, fit_top, predict_tracks


def _pooled(keys: pd.DataFrame, cache: TrackCache, track_ids) -> list[np.ndarray]:
    key_of = dict(zip(keys["track_id"].astype(str), keys["cache_key"].astype(str), strict=True))
    missing = [t for t in track_ids if t not in key_of]
    if missing:
        raise KeyError(f"no MusiCNN features for tracks {missing[:5]} ({len(missing)} missing)")
    out = []
    for t in track_ids:
        entry = cache[key_of[t]]
        if str(entry["status"]) != "ok":
            raise ValueError(f"track {t} has no MusiCNN features: {entry['reason']}")
        out.append(entry["patch_pooled"])
    return out


def train_finetune(keys: pd.DataFrame, cache: TrackCache, split: pd.DataFrame,
                   params: dict[str, Any], musicnn: dict[str, Any], genres: list[str],
                   seed: int):  # fmt: skip
    """The fine-tuned network (servable, per patch) and its training record."""
    train_ids, y_train = labels(split, "train", genres)
    val_ids, y_val = labels(split, "val", genres)
    start = time.perf_counter()
    full, top = build_finetune_model(load_network(musicnn), len(genres), params)
    history = fit_top(top, _pooled(keys, cache, train_ids), y_train,
                      _pooled(keys, cache, val_ids), y_val, params, int(params.get("seed", seed)))  # fmt: skip
    info = {"kind": params["kind"], "history": history, "epochs_run": len(history["loss"]),
            "n_train": int(len(y_train)), "n_parameters": int(top.count_params()),
            "train_seconds": time.perf_counter() - start}  # fmt: skip
    return full, info


def evaluate_finetune(model, keys: pd.DataFrame, cache: TrackCache, split: pd.DataFrame,
                      train_info: dict[str, Any], params: dict[str, Any], genres: list[str]):  # fmt: skip
    """The template's five reports (metrics, per genre, predictions, confusion, curves)."""
    name = params.get("name", "transfer_finetune")
    test_ids, y_test = labels(split, "test", genres)
    start = time.perf_counter()
    proba = predict_tracks(model.get_layer("musicnn_top"), _pooled(keys, cache, test_ids))
    infer_s = time.perf_counter() - start
    return test_reports(name, params["kind"], proba, y_test, test_ids, infer_s, train_info,
                        genres)
