"""What a model reads, built the same way for training, tuning, evaluation and cross-validation
(no Kedro here): spectrogram sets, the rows of a split, the feature columns a table model reads,
band-limited input tables and augmented training sets.

``model_input`` is a feature table (one row per track: ``track_id``, ``genre``, feature
columns) or a :class:`SpectrogramSet`; ``params`` is the model's own parameter block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from music_genre import audio

logger = logging.getLogger(__name__)


@dataclass
class SpectrogramSet:
    """Spectrograms of many tracks: ``data[i]`` is track ``track_ids[i]`` (n_mels × n_frames).

    ``data`` is a read-only memory map when loaded from disk, so a model can stream batches
    without holding every spectrogram in RAM.
    """

    track_ids: np.ndarray
    data: np.ndarray

    def __post_init__(self) -> None:
        self.track_ids = np.asarray(self.track_ids, dtype=str)
        if len(self.track_ids) != len(self.data):
            raise ValueError(
                f"SpectrogramSet: {len(self.track_ids)} track ids for {len(self.data)} arrays"
            )

    def __len__(self) -> int:
        return len(self.track_ids)

    def index_of(self, track_ids) -> np.ndarray:
        lookup = {t: i for i, t in enumerate(self.track_ids)}
        missing = [t for t in track_ids if t not in lookup]
        if missing:
            raise KeyError(f"no spectrogram for tracks {missing[:5]} ({len(missing)} missing)")
        return np.array([lookup[t] for t in track_ids], dtype=np.int64)


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("track_id", "genre")]


def select(model_input, track_ids: np.ndarray, columns: list[str] | None = None):
    """The model input rows of ``track_ids``: an array for tables (``columns``, default every
    feature column, in that order), (set, indices) for spectrograms."""
    track_ids = np.asarray(track_ids, dtype=str)
    if isinstance(model_input, SpectrogramSet):
        return model_input, model_input.index_of(track_ids)
    table = model_input.set_index(model_input["track_id"].astype(str))
    missing = [t for t in track_ids if t not in table.index]
    if missing:
        raise KeyError(f"model input has no rows for tracks {missing[:5]} ({len(missing)})")
    columns = feature_columns(model_input) if columns is None else list(columns)
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise KeyError(f"model input has no columns {absent[:5]} ({len(absent)} missing); is the "
                       "model reading the right feature table?")
    return table.loc[track_ids, columns].to_numpy(np.float32)


def labels(split: pd.DataFrame, part: str, genres: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Track ids and genre indices of the ``part`` (train/val/test) rows of ``split``."""
    rows = split[split["split"].astype(str) == part]
    index = {g: i for i, g in enumerate(genres)}
    unknown = sorted(set(rows["genre"].astype(str)) - set(index))
    if unknown:
        raise ValueError(f"split has genres {unknown} that are not in params:genres")
    ids = rows["track_id"].astype(str).to_numpy()
    y = np.array([index[g] for g in rows["genre"].astype(str)], dtype=np.int64)
    return ids, y


def input_columns(model_input, params: dict[str, Any]) -> list[str] | None:
    """The feature columns a table model reads (``params['feature_columns']``): ``all`` the
    table's, ``reference`` (the reference's 57) or an explicit list; None for spectrograms."""
    if isinstance(model_input, SpectrogramSet):
        return None
    choice = params.get("feature_columns", "all")
    if choice == "all":
        return feature_columns(model_input)
    if choice == "reference":
        return list(audio.FEATURE_NAMES)
    if isinstance(choice, (list, tuple)):
        return [str(c) for c in choice]
    raise ValueError(f"params:{params.get('name', params['kind'])}.feature_columns={choice!r}: "
                     "use all, reference or a list of column names")


def degraded_rows(degraded: pd.DataFrame | None, chain: str, where: str) -> pd.DataFrame:
    """The rows of chain ``chain`` of the ``degraded_features`` table (``track_id``, ``genre``,
    feature columns), or an error naming ``where`` and the parameter that computes them."""
    available = set() if degraded is None else set(degraded["degradation"].astype(str))
    if chain not in available:
        raise ValueError(f"{where} needs the '{chain}' copies, but the degraded_features table has "
                         f"{sorted(available) or 'none'}: add '{chain}' to "
                         "params:augmentation.degradations (data processing computes them)")
    part = degraded[degraded["degradation"].astype(str) == chain]
    return part.drop(columns="degradation").reset_index(drop=True)


def input_table(model_input, degraded: pd.DataFrame | None, params: dict[str, Any]):
    """What the model reads: ``model_input``, or with ``params['input_degradation']`` (e.g.
    ``resample_8k``) every track as it sounds after that chain, which the service applies to
    every upload too: a band every recording still has, so 16 kHz, 8 kHz and MP3 uploads look
    like the training data (``evaluate_cv`` measures the trade-off)."""
    chain = params.get("input_degradation")
    if not chain:
        return model_input
    name = params.get("name", params["kind"])
    if isinstance(model_input, SpectrogramSet):
        raise ValueError(f"params:{name}.input_degradation: degraded copies exist for feature "
                         "tables only; set it to null for a spectrogram model")
    rows = degraded_rows(degraded, str(chain), f"params:{name}.input_degradation")
    # the same columns as the table it stands for (the 57 for `features`)
    return rows[["track_id", "genre", *feature_columns(model_input)]]


def augmented_training_set(x_train: np.ndarray, y_train: np.ndarray, train_ids: np.ndarray,
                           degraded: pd.DataFrame | None, params: dict[str, Any],
                           columns: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """``x_train`` plus the rows of the same training tracks after each chain in
    ``params['augment']`` (e.g. ``[resample_16k, resample_8k, mp3]``), with the same labels.

    Only training tracks are copied, so nothing of a validation or test track is learnt from.
    """
    kinds = list(params.get("augment") or [])
    if not kinds:
        return x_train, y_train
    name = params.get("name", params["kind"])
    if columns is None:
        raise ValueError(f"params:{name}.augment: degraded copies exist for feature tables only; "
                         "spectrogram models have `lowpass` (params:cnn.lowpass)")
    xs, ys = [x_train], [y_train]
    for kind in kinds:
        part = degraded_rows(degraded, kind, f"params:{name}.augment")
        xs.append(select(part, train_ids, columns))
        ys.append(y_train)
    logger.info("%s: %d training tracks + their %s copies = %d rows", name, len(y_train),
                "/".join(kinds), sum(len(y) for y in ys))
    return np.vstack(xs), np.concatenate(ys)


FIT_ON = ("train", "train+val", "auto")


def fit_on(params: dict[str, Any]) -> str:
    """``params['fit_on']`` resolved to ``train`` (the split's training tracks) or ``train+val``
    (its validation tracks too: for models that do not early-stop on them, which would
    otherwise leave them unused); ``auto``: train+val unless the model's family early-stops
    (Keras). Test tracks are never fitted on either way."""
    value = str(params.get("fit_on", "train"))
    name = params.get("name", params.get("kind"))
    if value not in FIT_ON:
        raise ValueError(f"params:{name}.fit_on is '{value}': use one of {list(FIT_ON)}")
    if value != "train":
        from music_genre.models import families  # families imports this module

        keras = families.by_kind(params["kind"]).keras
        if value == "auto":
            return "train" if keras else "train+val"
        if keras:
            raise ValueError(f"params:{name}.fit_on is train+val, but {params['kind']} "
                             "early-stops on the validation tracks: set it to train or auto")
    return value


def fit_inputs(model_input, split: pd.DataFrame, params: dict[str, Any], genres: list[str],
               degraded: pd.DataFrame | None = None, tuning: bool = False):
    """Everything a model is fitted on, the same for training and tuning: the training rows
    (plus their degraded copies, ``params['augment']``) and the validation rows of the table
    the model reads (``input_table``, ``input_columns``). With ``fit_on: train+val`` the
    validation rows join the training rows (none are returned as validation), except for
    ``tuning``, whose trials are scored on them. Returns
    ``(x_train, y_train, x_val, y_val, columns)``; ``columns`` is None for spectrograms."""
    train_ids, y_train = labels(split, "train", genres)
    val_ids, y_val = labels(split, "val", genres)
    if not tuning and fit_on(params) == "train+val":
        train_ids, y_train = np.concatenate([train_ids, val_ids]), np.concatenate([y_train, y_val])
        val_ids, y_val = val_ids[:0], y_val[:0]
    if not len(train_ids):
        raise ValueError("the split has no training tracks")
    table = input_table(model_input, degraded, params)
    columns = input_columns(table, params)
    x_train, y_fit = augmented_training_set(select(table, train_ids, columns), y_train,
                                            train_ids, degraded, params, columns)
    return x_train, y_fit, select(table, val_ids, columns), y_val, columns
