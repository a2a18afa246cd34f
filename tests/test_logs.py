"""What a person reads after ``kedro run --env demo --pipeline mlp > run.log``: no warning except
the expected one (the demo's deliberately broken file), no deprecation notice, whole lines, and a
closing summary that names the model, its accuracy and the report.

The run is a real ``kedro`` process on a throw-away copy of the project (tiny demo settings), so
every start-up path (Kedro's CLI, plugins, TensorFlow through the MLP, MLflow) is the user's.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from music_genre import logs
from tests.helpers import TINY, make_project

TINY_CONF = {k: v for k, v in TINY.items() if not k.startswith("demo_")}
# 10 training tracks: a PCA of 30 components would be cut to 10, with a (deserved) warning
TINY_CONF["mlp"] = {**TINY_CONF["mlp"], "pca_components": 8}


def _init_hook_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the child; when this checkout was installed before its ``kedro.init``
    entry point existed, a stand-in distribution declares it (what ``pip install -e .`` does)."""
    paths = [p for p in sys.path if p]
    installed = any(ep.value == "music_genre.logs:setup"
                    for ep in importlib.metadata.entry_points(group="kedro.init"))
    if not installed:
        dist = tmp_path / "entry" / "music_genre_init-0.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: music-genre-init\n"
                                       "Version: 0.0\n")
        (dist / "entry_points.txt").write_text("[kedro.init]\nmusic_genre = "
                                               "music_genre.logs:setup\n")
        paths.insert(0, str(dist.parent))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
            "COLUMNS": "", "TERM": "dumb"}


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("logs")
    project = make_project(tmp / "project")
    demo_params = project / "conf" / "demo" / "parameters.yml"
    merged = yaml.safe_load(demo_params.read_text()) or {}
    for key, value in TINY_CONF.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    demo_params.write_text(yaml.safe_dump(merged))
    log = tmp / "run.log"
    kedro = Path(sys.executable).with_name("kedro")
    with open(log, "w") as out:
        subprocess.run(
            [str(kedro), "run", "--env", "demo", "--pipeline", "mlp", "--params",
             f"demo_n_per_genre={TINY['demo_n_per_genre']},"
             f"demo_duration_s={TINY['demo_duration_s']}"],
            cwd=project, stdout=out, stderr=subprocess.STDOUT, env=_init_hook_env(tmp),
            check=True, timeout=900)
    return log.read_text()


@pytest.mark.slow  # kedro run in a subprocess
def test_only_the_expected_warning(demo_log):
    warning_lines = [line for line in demo_log.splitlines() if "WARNING" in line]
    assert len(warning_lines) == 1, "\n".join(warning_lines)
    assert "1 file(s) excluded from the dataset" in warning_lines[0]
    for noise in ("Deprecat", "deprecat", "absl::InitializeLog", "oneDNN", "PySoundFile failed",
                  "partially initialized module", "Add type hints", "Traceback"):
        assert noise not in demo_log, noise


@pytest.mark.slow  # kedro run in a subprocess
def test_lines_are_whole_and_the_run_ends_with_a_summary(demo_log):
    lines = demo_log.splitlines()
    logged = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)]
    assert len(logged) > 20
    # a path that Rich would have broken over two lines at 80 columns comes out whole
    saved = [line for line in logged if "Saved 'mlp.model' to" in line]
    assert saved and saved[0].rstrip().endswith("mlp.bundle")
    summary = lines[[i for i, line in enumerate(lines) if "Run summary:" in line][-1]:]
    assert re.search(r"mlp\s+\d+\.\d\d % / \d\.\d{3}", "\n".join(summary))


def test_known_warnings_are_the_documented_ones():
    assert set(logs.KNOWN_WARNINGS) == {"Add type hints to the `predict` method"}
