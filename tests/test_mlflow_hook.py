"""kedro-mlflow's hook as the project registers it (``music_genre.mlflow_hook``): a run whose
pipelines ``mlflow.yml`` leaves untracked (``data_processing``) never connects to the tracking
store (SQLAlchemy/Alembic set-up, ~1 s per command) nor opens a run; a tracked one is set up as
kedro-mlflow sets it up. Each case in a fresh interpreter (the store's modules, once imported,
stay imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from pathlib import Path
from kedro.framework.project import pipelines
from music_genre.mlflow_hook import TrackedRunsMlflowHook

class Loader(dict):
    config_patterns = {}

class Context:
    _package_name = "music_genre"
    project_path = Path(sys.argv[1])
    config_loader = Loader(mlflow=json.loads(sys.argv[2]))

    def _get_config_credentials(self):
        return {}

pipelines._requested_pipelines = json.loads(sys.argv[3])
hook = TrackedRunsMlflowHook()
hook.after_context_created(Context())
print(json.dumps({
    "tracked": hook.tracks_this_run,
    "store_imported": "mlflow.store.tracking.sqlalchemy_store" in sys.modules,
    "db": (Path(sys.argv[1]) / "mlflow.db").exists(),
}))
"""


def _hook(tmp_path: Path, requested) -> dict:
    conf = yaml.safe_load((ROOT / "conf/base/mlflow.yml").read_text())
    conf["server"]["mlflow_tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    conf["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] = str(
        tmp_path / "artifacts")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), json.dumps(conf), json.dumps(requested)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_conf_leaves_data_processing_untracked():
    conf = yaml.safe_load((ROOT / "conf/base/mlflow.yml").read_text())
    assert "data_processing" in conf["tracking"]["disable_tracking"]["pipelines"]


def test_untracked_run_never_sets_up_the_tracking_store(tmp_path):
    got = _hook(tmp_path, ["data_processing"])
    assert got == {"tracked": False, "store_imported": False, "db": False}


@pytest.mark.parametrize("requested", [["rf"], None])  # a model pipeline; the default run
def test_tracked_run_sets_up_the_store_as_kedro_mlflow_does(tmp_path, requested):
    got = _hook(tmp_path, requested)
    assert got == {"tracked": True, "store_imported": True, "db": True}
