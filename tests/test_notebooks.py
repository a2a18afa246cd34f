"""The notebooks run headless against a tiny demo run, agree with the pipeline's own outputs and
are committed clean (no outputs, no file paths: everything comes through the Kedro catalog)."""

from __future__ import annotations

import json
import re
from itertools import combinations

import mlflow
import nbformat
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient

from tests.helpers import PROJECT_ROOT, TINY, latest, make_project

NOTEBOOKS = PROJECT_ROOT / "notebooks"
EXPLORATION, RESULTS = "01_exploration.ipynb", "02_results.ipynb"
# three models are enough to exercise every table and plot; `transfer` and `reporting` are left
# out to keep the test short (02 then rebuilds the comparison itself, as documented)
MODELS = ["rf", "mlp", "cnn"]
PROBE = "__PROBE__"


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("notebook_project"))
    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, env="demo", runtime_params=TINY) as s:
            s.run(pipeline_names=MODELS)  # each includes data processing
    finally:
        while mlflow.active_run():
            mlflow.end_run()
    return project


def execute(name: str, project, workdir, monkeypatch, probe: str) -> tuple[dict, list]:
    """Run a notebook in a fresh python3 kernel, then ``probe`` (code printing a dict) in it."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json as _json\nprint({PROBE!r} + _json.dumps({probe}, default=str))"))
    monkeypatch.setenv("MUSIC_GENRE_PROJECT", str(project))
    monkeypatch.setenv("KEDRO_ENV", "demo")
    monkeypatch.delenv("MUSIC_GENRE_PARAMS", raising=False)
    # the kernel starts outside the project: the notebook must find it from the variables alone
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    found = re.search(re.escape(PROBE) + r"(.*)", text)
    assert found, f"{name}: the probe printed nothing"
    return json.loads(found.group(1)), outputs


def pngs(outputs: list) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.parametrize("name", [EXPLORATION, RESULTS])
def test_notebook_is_committed_clean_and_uses_the_catalog(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        f"{name} has outputs: clear them before committing"
    source = "\n".join(c.source for c in code)
    assert "%load_ext kedro.ipython" in source and "%reload_kedro" in source
    assert source.count("catalog.load(") >= 5
    for path_like in ("data/", "/work", "../", ".csv", ".parquet", "open("):
        assert path_like not in source, f"{name} builds a path ({path_like!r}): use the catalog"


@pytest.mark.slow  # a demo run, then the notebook in a kernel
def test_exploration_notebook(demo_project, tmp_path, monkeypatch):
    result, outputs = execute(
        EXPLORATION, demo_project, tmp_path, monkeypatch,
        '{"balance": balance.to_dict(), "excluded": excluded["track_id"].tolist(), '
        '"examples": examples["track_id"].tolist(), "cumulative": cumulative.tolist(), '
        '"pcs": pcs.shape, "tsne": embedded.shape}')
    data = demo_project / "data" / "demo"
    manifest = pd.read_csv(latest(data / "03_primary" / "manifest.csv", "manifest.csv"))
    ok = manifest[manifest["status"] == "ok"]
    assert result["balance"]["usable"] == ok.groupby("genre").size().to_dict()
    assert sum(result["balance"]["excluded"].values()) == 1
    assert result["excluded"] == manifest.loc[manifest["status"] != "ok", "track_id"].tolist()
    # one example track per genre, each a usable one
    assert len(result["examples"]) == 10 and set(result["examples"]) <= set(ok["track_id"])

    # PCA explained variance against an independent SVD of the standardised features
    features = pd.read_parquet(latest(data / "04_feature" / "features.parquet",
                                      "features.parquet"))
    x = features.drop(columns=["track_id", "genre"]).to_numpy(dtype=np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    s = np.linalg.svd(x, compute_uv=False)
    expected = np.cumsum(s**2) / np.sum(s**2)
    cumulative = np.array(result["cumulative"])
    np.testing.assert_allclose(cumulative, expected[: len(cumulative)], atol=1e-8)
    assert result["pcs"] == [30, 2] and result["tsne"] == [30, 2]
    # class balance, waveforms + spectrograms, box plots, feature heat map, PCA, 2-D projection
    assert pngs(outputs) >= 6


@pytest.mark.slow  # a demo run, then the notebook in a kernel
def test_results_notebook(demo_project, tmp_path, monkeypatch):
    result, outputs = execute(
        RESULTS, demo_project, tmp_path, monkeypatch,
        '{"models": models, "f1": f1.to_dict(), "accuracy": table.set_index("model")'
        '["accuracy"].to_dict(), "top": top["total"].to_dict(), '
        '"examples": examples[["true", "predicted", "pair"]].astype(str).values.tolist(), '
        '"studies": sorted(studies)}')
    reports = demo_project / "data" / "demo" / "08_reporting"
    metrics = {m: json.loads(latest(reports / m / "metrics.json", "metrics.json").read_text())
               for m in MODELS}
    assert result["models"] == MODELS
    for m in MODELS:
        assert result["accuracy"][metrics[m]["model"]] == pytest.approx(metrics[m]["accuracy"])
        assert result["f1"][m] == pytest.approx(
            {g: v["f1"] for g, v in metrics[m]["per_genre"].items()})

    # the most confused pair, computed independently from the confusion matrices
    genres = list(metrics["rf"]["per_genre"])
    cms = sum(np.array(metrics[m]["confusion_matrix"]) for m in MODELS)
    totals = {" / ".join(sorted((genres[i], genres[j]))): int(cms[i, j] + cms[j, i])
              for i, j in combinations(range(len(genres)), 2)}
    top = {pair: n for pair, n in totals.items() if n}
    assert result["top"] and max(result["top"].values()) == max(top.values())
    assert all(top[pair] == n for pair, n in result["top"].items())
    # every example track is a real mistake of one of the listed pairs
    for true, predicted, pair in result["examples"]:
        assert true != predicted and pair == " / ".join(sorted((true, predicted)))
        assert pair in result["top"]
    assert result["studies"] == []  # no tuning run here: the notebook says how to start one
    assert pngs(outputs) >= 2  # confusion matrices, per-genre F1
