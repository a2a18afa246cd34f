"""Tiny data for the tuning tests (tests/tuning, tests/pipelines/tune_*): a synthetic feature
table with a split, and the committed tuning conf. A pytest plugin of tests/conftest.py.

Four genres whose feature means differ, so a model learns them in a few epochs; the split is
track-level, like the data-processing pipeline's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import MemoryDataset

PROJECT = Path(__file__).resolve().parents[1]
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


def tiny_spectrograms(split: pd.DataFrame, seed: int = 0):
    """A SpectrogramSet of ``split``'s tracks (16 mel bins × 32 frames): a louder band per genre."""
    from music_genre.datasets import SpectrogramSet

    rng = np.random.default_rng(seed)
    data = rng.normal(0, 1, (len(split), 16, 32)).astype(np.float16)
    for i, g in enumerate(split["genre"]):
        data[i, 4 * GENRES.index(g): 4 * GENRES.index(g) + 4] += 2
    return SpectrogramSet(split["track_id"].to_numpy(), data)


class _Kept(MemoryDataset):
    """A MemoryDataset the runner does not release after its last reader."""

    def _release(self) -> None:
        pass


def run_tuning(pipeline, model: str, model_input, split: pd.DataFrame, model_params: dict,
               conf: dict, tmp_path: Path):
    """Run a ``tune_<model>`` pipeline's two steps with a real runner: ``tune`` on the train/val
    tracks only (its model input without the test tracks), then ``train_best`` on everything.
    Returns the catalog (free outputs in memory)."""
    from kedro.io import DataCatalog
    from kedro.runner import SequentialRunner

    from music_genre.datasets import SpectrogramSet

    tune = pipeline.only_nodes_with_tags("tune")
    (source,) = {d for d in tune.inputs() if not d.startswith("params:")} - {
        "split", "degraded_features"}
    test = set(split.loc[split["split"] == "test", "track_id"])
    if isinstance(model_input, SpectrogramSet):
        keep = np.array([t not in test for t in model_input.track_ids])
        seen = SpectrogramSet(model_input.track_ids[keep], model_input.data[keep])
    else:
        seen = model_input[~model_input["track_id"].isin(test)]
    catalog = DataCatalog(datasets={
        source: MemoryDataset(seen, copy_mode="assign"), "split": MemoryDataset(split),
        f"params:{model}": MemoryDataset(model_params), "params:tuning": MemoryDataset(conf),
        f"params:tuning.{model}": MemoryDataset(conf[model]),
        "params:genres": MemoryDataset(GENRES), "params:seed": MemoryDataset(0),
        "params:extraction": MemoryDataset({}),  # recorded in the tuned model's bundle
        "degraded_features": MemoryDataset(pd.DataFrame(columns=["track_id", "genre",
                                                                 "degradation"])),
        f"{model}.study": MemoryDataset(copy_mode="assign"),
        f"{model}_tuned.model": _Kept(copy_mode="assign"),  # read back by the test
    })  # fmt: skip
    SequentialRunner().run(tune, catalog)
    catalog[source] = MemoryDataset(model_input, copy_mode="assign")
    SequentialRunner().run(pipeline.only_nodes_with_tags("train_best"), catalog)
    return catalog
