"""kedro-viz: ``kedro viz build`` (the static export of what ``kedro viz run`` serves) shows every
registered pipeline with its data layers, named nodes and every model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project

from tests.helpers import make_project

pytestmark = pytest.mark.slow  # kedro viz build of every pipeline

# Kedro's data-layer convention, in data-flow order (conf/base/catalog_*.yml)
LAYERS = ["raw", "intermediate", "primary", "feature", "model_input", "models", "model_output",
          "reporting"]


@pytest.fixture(scope="module")
def viz_build(tmp_path_factory) -> tuple[Path, dict]:
    project = make_project(tmp_path_factory.mktemp("viz_project"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    kedro = Path(sys.executable).with_name("kedro")
    done = subprocess.run([str(kedro), "viz", "build"], cwd=project, env=env, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # a layer cycle makes kedro-viz drop every layer, with only a warning
    assert "circular dependency" not in done.stdout + done.stderr, done.stdout[-3000:]
    bootstrap_project(project)
    registry = {name: pipelines[name] for name in pipelines.keys()}
    return project / "build" / "api", registry


def test_every_registered_pipeline_is_built_with_its_layers(viz_build):
    api, registry = viz_build
    main = json.loads((api / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(registry)
    assert main["layers"] == LAYERS  # __default__: the whole data flow, in order
    for name, pipeline in registry.items():
        built = json.loads((api / "pipelines" / name).read_text())
        assert built["layers"], f"{name}: no layers (see the kedro viz build log)"
        # task nodes show their short name; full_name carries the namespace (rf.train_model)
        shown = {n.get("full_name") or n["name"] for n in built["nodes"]}
        assert {n.name for n in pipeline.nodes} <= shown, name
        assert set(pipeline.datasets()) <= shown, name


def test_nodes_are_named_and_stored_datasets_have_a_layer(viz_build):
    api, _ = viz_build
    main_nodes = []
    for path in (api / "pipelines").iterdir():
        main_nodes += json.loads(path.read_text())["nodes"]
    for node in main_nodes:
        if node["type"] == "task":
            # an unnamed Kedro node is called "func([inputs]) -> [outputs]"
            assert "(" not in node["name"] and "->" not in node["name"], node["name"]
        if node["type"] == "data" and "MemoryDataset" not in (node["dataset_type"] or ""):
            assert node["layer"] in LAYERS, f"{node['name']}: no kedro-viz layer in its catalog entry"


def test_every_model_is_shown_in_the_models_layer(viz_build):
    api, registry = viz_build
    models = {d for p in registry.values() for d in p.datasets() if d.endswith(".model")}
    assert {"rf.model", "mlp.model", "cnn.model", "transfer.model"} <= models
    for name, pipeline in registry.items():
        built = {n["name"]: n for n in json.loads((api / "pipelines" / name).read_text())["nodes"]}
        for model in models & set(pipeline.datasets()):
            # the ensemble's bundle is made from the members' test outputs: it sits with them
            layer = "model_output" if model == "ensemble.model" else "models"
            assert built[model]["layer"] == layer, (name, model)
