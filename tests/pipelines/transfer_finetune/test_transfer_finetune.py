"""``kedro run --pipeline transfer_finetune`` on the transfer pipeline's demo: the MusiCNN
network fine-tuned per patch, its saved model agreeing with the evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset

from music_genre.demo import GENRES
from tests.transfer_demo import transfer_catalog

pytestmark = pytest.mark.slow  # the transfer pipeline's run, then Keras fine-tuning


def test_finetune_pipeline(transfer_demo, transfer_trained):
    from music_genre.keras_dataset import KerasModelDataset
    from music_genre.pipelines.transfer_finetune import create_pipeline as finetune_pipeline
    from music_genre.transfer.embed import musicnn_input

    root, manifest, split, params = transfer_demo
    catalog = transfer_catalog(root, manifest, split, params, out="ft")
    catalog["musicnn_keys"] = MemoryDataset(transfer_trained.load("musicnn_keys"))
    catalog["params:transfer_finetune"] = MemoryDataset(
        {**params["transfer_finetune"], "epochs": 40, "batch_size": 16, "learning_rate": 1e-3})
    o = root / "ft"
    catalog["transfer_finetune.model"] = KerasModelDataset(filepath=str(o / "ft.keras"))
    catalog["transfer_finetune.metrics"] = JSONDataset(filepath=str(o / "ft_metrics.json"))
    catalog["transfer_finetune.predictions"] = CSVDataset(filepath=str(o / "ft_pred.csv"))
    SequentialRunner().run(finetune_pipeline(), catalog)

    metrics = catalog.load("transfer_finetune.metrics")
    assert metrics["kind"] == "musicnn_finetune" and metrics["n_test"] == 10
    assert metrics["accuracy"] >= 0.6 and metrics["epochs_run"] >= 1
    # the saved per-patch network, fed audio, agrees with the evaluation (which used the cached
    # float16 pooled features: hence the tolerance)
    model = catalog.load("transfer_finetune.model")
    row = catalog.load("transfer_finetune.predictions").iloc[0]
    from music_genre.transfer.embed import load_16k

    path = manifest.set_index("track_id").loc[row["track_id"], "path"]
    from music_genre.transfer.embed import EmbedParams

    recipe = EmbedParams.from_dict(params["musicnn"]["embedding"])  # the conf's patches
    proba = np.asarray(model.predict_on_batch(musicnn_input(load_16k(path), recipe))).mean(axis=0)
    np.testing.assert_allclose(proba, row[GENRES].to_numpy(float), atol=2e-3)
