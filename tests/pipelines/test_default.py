"""The main job end to end through a real KedroSession on (tiny) synthetic demo audio."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import TINY, latest, make_project, run

pytestmark = pytest.mark.slow  # the default pipeline in Kedro sessions


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("demo_project"))
    run(project, params=TINY)  # the default pipeline: data processing, every model, report
    return project


def test_default_pipeline_writes_every_artifact(demo_project):
    data = demo_project / "data" / "demo"
    manifest = pd.read_csv(latest(data / "03_primary" / "manifest.csv", "manifest.csv"))
    assert len(manifest) == 31  # 30 clips + the deliberately broken one
    assert (manifest["status"] == "ok").sum() == 30
    broken = manifest[manifest["status"] != "ok"]
    assert broken["reason"].str.contains("not a decodable audio file").all()

    features = pd.read_parquet(latest(data / "04_feature" / "features.parquet",
                                      "features.parquet"))
    assert features.shape == (30, 2 + 57)
    split = pd.read_csv(latest(data / "05_model_input" / "split.csv", "split.csv"))
    assert split.groupby("split").size().to_dict() == {"test": 10, "train": 10, "val": 10}

    for model in ("rf", "mlp", "cnn"):  # each a bundle: the model + its serving contract
        folder = latest(data / "06_models" / f"{model}.bundle", f"{model}.bundle")
        assert (folder / "contract.json").stat().st_size > 0
        metrics = json.loads(latest(data / "08_reporting" / model / "metrics.json",
                                    "metrics.json").read_text())
        assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n_test"] == 10
        for png in ("confusion_matrix.png", "training_curves.png"):
            assert latest(data / "08_reporting" / model / png, png).read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(latest(data / "08_reporting" / "comparison.csv", "comparison.csv"))
    assert {"rf", "mlp", "cnn"} <= set(table["model"])
    md = latest(data / "08_reporting" / "comparison.md", "comparison.md").read_text()
    # the comparison leads with the honest figures (grouped CV, other artists), then the split
    assert md.startswith("| Model | Grouped CV (artist proxy) | Other artists | Test split |")


def test_second_run_uses_the_cache_and_a_parameter_change_recomputes(demo_project):
    cache = demo_project / "data" / "demo" / "02_intermediate" / "track_cache"
    before = set(p.name for p in cache.glob("*.npz"))
    assert len(before) == 30
    run(demo_project, "data_processing", params=TINY)
    assert set(p.name for p in cache.glob("*.npz")) == before  # nothing recomputed

    changed = {**TINY, "extraction": {"duration_s": 6.0, "rolloff_percent": 0.9}}
    run(demo_project, "data_processing", params=changed)
    after = set(p.name for p in cache.glob("*.npz"))
    assert len(after - before) == 30  # every track analysed again under the new parameters
    data = demo_project / "data" / "demo"
    versions = sorted((data / "04_feature" / "features.parquet").iterdir())
    old = pd.read_parquet(versions[-2] / "features.parquet")
    new = pd.read_parquet(versions[-1] / "features.parquet")
    assert not np.allclose(old["rolloff_mean"], new["rolloff_mean"])
    assert np.allclose(old["mfcc1_mean"], new["mfcc1_mean"])
