"""Start-up of `kedro run --pipeline data_processing`: the pipeline registry does not import the
model pipelines' modules (matplotlib, sklearn.metrics: ~1.3 CPU-s per command) when the run
names no model pipeline, and still registers every pipeline for the default run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import sys
from kedro.framework.project import configure_project, pipelines
configure_project("music_genre")
from music_genre import pipeline_registry
pipelines._requested_pipelines = {requested!r}
found = pipeline_registry.register_pipelines()
print(sorted(found), "music_genre.pipelines.training" in sys.modules)
"""


def _register(requested):
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(requested=requested)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    names, imported = out.stdout.strip().rsplit(" ", 1)
    return names, imported == "True"


def test_a_data_processing_run_does_not_import_the_model_pipelines():
    names, imported = _register(["data_processing"])
    assert "'data_processing'" in names and "'cnn'" not in names
    assert not imported


def test_the_default_run_and_a_model_run_register_the_model_pipelines():
    for requested in (None, ["__default__"], ["cnn"]):
        names, imported = _register(requested)
        assert "'cnn'" in names and imported, requested
