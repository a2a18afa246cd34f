"""The tune_mlp pipeline on tiny data: tune (2 trials × 2 epochs) → reports → train the best."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset

from music_genre.pipelines.tuning import single_tuning_pipeline, tuning_pipeline
from tests.tuning_data import GENRES

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


@pytest.mark.slow  # Keras trials
def test_tune_then_train_best(tmp_path, features_and_split, tuning_conf, model_params):
    features, split = features_and_split
    mlp = {**model_params["mlp"], "hidden_units": [32], "verbose": 0}
    conf = {**tuning_conf, "n_trials": 2, "storage": f"sqlite:///{tmp_path}/studies.db",
            "sampler": {"seed": 0, "n_startup_trials": 2}, "mlflow": False,
            "mlp": {**tuning_conf["mlp"], "fixed": {"epochs": 2, "verbose": 0}}}
    out = tmp_path / "out"
    catalog = DataCatalog(datasets={
        "mlp.best_params": JSONDataset(filepath=str(out / "best_params.json")),
        "mlp.trials": CSVDataset(filepath=str(out / "trials.csv")),
        **{f"mlp.{p}": MatplotlibDataset(filepath=str(out / f"{p}.png")) for p in PLOTS},
        "mlp_tuned.metrics": JSONDataset(filepath=str(out / "metrics.json")),
        "split": MemoryDataset(split),
        # tuning sees no test track: select() fails on a track it cannot find
        "features": MemoryDataset(features[split["split"] != "test"]),
        "params:mlp": MemoryDataset(mlp), "params:tuning": MemoryDataset(conf),
        "params:tuning.mlp": MemoryDataset(conf["mlp"]),
        "params:genres": MemoryDataset(GENRES), "params:seed": MemoryDataset(0),
        "params:extraction": MemoryDataset({}),  # recorded in the tuned model's bundle
        "degraded_features": MemoryDataset(pd.DataFrame(columns=["track_id", "genre",
                                                                 "degradation"])),
    })  # fmt: skip
    pipeline = tuning_pipeline("mlp", "features")
    SequentialRunner().run(pipeline.only_nodes_with_tags("tune"), catalog)

    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["number"]) == [0, 1] and set(trials["state"]) == {"COMPLETE"}
    assert trials["value"].between(0, 1).all()
    assert (trials["user_attrs_epochs_run"] == 2).all()
    best = json.loads((out / "best_params.json").read_text())
    assert best["best_value"] == trials["value"].max() and best["metric"] == "val_accuracy"
    assert best["params"]["epochs"] == 2 and best["params"]["kind"] == "keras_mlp"
    assert len(best["params"]["hidden_units"]) == best["search_values"]["hidden_units.length"]
    for plot in PLOTS:
        assert (out / f"{plot}.png").stat().st_size > 5_000

    # the documented second step (--tags train_best): the best block, trained and tested
    catalog["features"] = MemoryDataset(features)
    SequentialRunner().run(pipeline.only_nodes_with_tags("train_best"), catalog)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "mlp_tuned" and metrics["n_test"] == (split["split"] == "test").sum()
    assert metrics["epochs_run"] == 2 and 0 <= metrics["accuracy"] <= 1


def test_the_pipelines_include_data_processing_and_both_steps():
    pipeline = single_tuning_pipeline("mlp")
    names = {n.name for n in pipeline.nodes}
    assert {"mlp.tune_hyperparameters", "mlp.report_study", "mlp_tuned.train_model",
            "mlp_tuned.evaluate_model", "split_tracks"} <= names
    tune = pipeline.only_nodes_with_tags("tune")
    assert tune.outputs() >= {"mlp.best_params", "mlp.trials", *(f"mlp.{p}" for p in PLOTS)}
    assert "mlp.best_params" in pipeline.only_nodes_with_tags("train_best").inputs()


def test_each_tunable_model_is_tuned_on_the_table_it_trains_on():
    from music_genre import roster
    from music_genre.pipelines.training import model_pipeline

    for model in roster.tunable_models():
        source = roster.spec(model).input
        tune = tuning_pipeline(model).only_nodes_with_tags("tune")
        trained = model_pipeline(model, source)
        assert source in tune.inputs(), model
        # band-limited input / augmented copies: tuning reads them exactly when training does
        assert ("degraded_features" in tune.inputs()) == ("degraded_features" in trained.inputs())
