"""The one model roster: a new row (plus its parameter block) reaches every surface."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from music_genre import inference, roster
from music_genre.api.service import ApiSettings, load_service
from music_genre.pipelines.evaluate_cv.nodes import cross_validate_models
from tests.helpers import TINY, latest, make_project, run


def test_every_surface_lists_the_roster():
    from kedro.framework.startup import bootstrap_project

    from music_genre.pipeline_registry import register_pipelines
    from tests.helpers import PROJECT_ROOT

    bootstrap_project(PROJECT_ROOT)
    pipelines = register_pipelines()
    assert set(roster.template_models()) <= set(pipelines)  # kedro run --pipeline <model>
    assert {f"{m}.metrics" for m in roster.names()} <= pipelines["reporting"].inputs()
    assert {f"{m}.predictions" for m in roster.ensemble_members()} <= \
        pipelines["ensemble"].inputs()
    assert "rf_robust.predictions" not in pipelines["ensemble"].inputs()
    assert inference.MODEL_NAMES == roster.names()


@pytest.mark.slow  # a default run, evaluate_cv and the service
def test_a_toy_model_row_appears_in_the_run_report_ensemble_cv_and_api(tmp_path, monkeypatch):
    from kedro.framework.startup import bootstrap_project

    from music_genre.pipeline_registry import register_pipelines

    # a small Keras MLP on the rich features (the `{model}.*` catalog factories store it)
    toy = roster.ModelSpec("logreg", "table", "rich_features")
    monkeypatch.setattr(roster, "ROSTER", [*roster.ROSTER[:-1], toy, roster.ROSTER[-1]])
    project = make_project(tmp_path / "p")
    # the model's own parameter block: the one other thing a new model needs (conf, not code)
    mlp = yaml.safe_load((project / "conf" / "base" / "parameters_mlp.yml").read_text())["mlp"]
    block = {**mlp, "name": "logreg", "pca_components": None, "hidden_units": [8],
             "epochs": 2, "verbose": 0,
             "rich_segment_s": "${rich_features.segment_s}"}  # how the service recomputes them
    (project / "conf" / "base" / "parameters_logreg.yml").write_text(
        yaml.safe_dump({"logreg": block}))

    bootstrap_project(project)
    pipelines = register_pipelines()
    default = pipelines["__default__"]
    assert {"logreg.train_model", "logreg.evaluate_model"} <= {n.name for n in default.nodes}
    assert "logreg.metrics" in pipelines["reporting"].inputs()
    assert "logreg.predictions" in pipelines["ensemble"].inputs()
    assert {"logreg.model", "logreg.metrics"} <= pipelines["model_selection"].inputs()

    run(project, "logreg", params=TINY)  # data processing + the template under `logreg`
    data = project / "data" / "demo"
    metrics = pd.read_json(latest(data / "08_reporting" / "logreg" / "metrics.json",
                                  "metrics.json"), typ="series")
    assert metrics["model"] == "logreg" and metrics["n_test"] > 0

    # evaluate_cv: a variant reading the live block of a roster model
    rich = pd.read_parquet(latest(data / "04_feature" / "rich_features.parquet",
                                  "rich_features.parquet"))
    folds = pd.DataFrame({"track_id": rich["track_id"], "genre": rich["genre"],
                          "group": range(len(rich)), "scheme": "stratified", "repeat": 0,
                          "fold": [i % 3 for i in range(len(rich))]})
    cv = {"n_repeats": 1, "val_fraction": 0.2, "seed": 0, "run": ["logreg"],
          "variants": {"logreg": {"input": "rich_features", "params": "logreg"}}}
    genres = sorted(rich["genre"].unique())
    fold_metrics, oof, _ = cross_validate_models(
        None, rich, None, pd.DataFrame(columns=["degradation"]), None, folds, {}, cv,
        {"logreg": {**{k: v for k, v in block.items() if k != "accelerator"},
                    "rich_segment_s": 3.0}}, genres)
    assert set(fold_metrics["model"]) == {"logreg"} and len(fold_metrics) == 3
    assert set(oof["track_id"]) == set(rich["track_id"])

    # the service loads and answers with it, through its family's input builder
    service = load_service(ApiSettings(project_path=str(project), env="demo", warmup=False,
                                       models=["logreg"]))
    logreg = service.available["logreg"]
    assert logreg.contract["family"] == "keras-table"
    assert inference.input_builder(logreg) is inference.FAMILY_BUILDERS["table"]
    # the run's extraction (TINY's 6 s windows) comes with the model: conf/demo says 30 s
    assert logreg.extraction.duration_s == 6.0
    assert "duration_s: 6.0 in the bundle, 30.0 in conf" in service.models["logreg"].conf_differences
    manifest = pd.read_csv(latest(data / "03_primary" / "manifest.csv", "manifest.csv"))
    path = manifest[manifest["status"] == "ok"]["path"].iloc[0]
    answer = inference.predict_bytes(open(path, "rb").read(), logreg, "track.wav")
    assert answer.genre in service.genres and answer.n_windows == 1
