"""Tiny data for the tuning tests: a synthetic feature table and spectrogram set with a split.

Four genres whose feature means differ, so a model learns them in a few epochs; the split is
track-level, like the data-processing pipeline's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROJECT = Path(__file__).resolve().parents[2]
GENRES = ["blues", "classical", "jazz", "metal"]


def synthetic_features(per_genre: int = 15, n_features: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, parts = [], []
    for g, genre in enumerate(GENRES):
        centre = rng.normal(0, 2, n_features)
        for i in range(per_genre):
            rows.append({"track_id": f"{genre}.{i:05d}", "genre": genre,
                         **{f"f{j}": v for j, v in enumerate(centre + rng.normal(0, 1,
                                                                              n_features))}})
            parts.append("train" if i < per_genre * 0.6 else
                         "val" if i < per_genre * 0.8 else "test")
    features = pd.DataFrame(rows)
    split = features[["track_id", "genre"]].assign(split=parts)
    return features, split


@pytest.fixture(scope="session")
def features_and_split():
    return synthetic_features()


@pytest.fixture(scope="session")
def parameters() -> dict:
    """The project's base parameters as Kedro resolves them (interpolations included)."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(str(PROJECT / "conf"), base_env="base", default_run_env="base")
    return loader["parameters"]


@pytest.fixture(scope="session")
def tuning_conf(parameters) -> dict:
    """params:tuning as committed (tests set their own storage)."""
    return parameters["tuning"]


@pytest.fixture(scope="session")
def model_params(parameters) -> dict:
    return {m: parameters[m] for m in ("rf", "mlp", "cnn")}
