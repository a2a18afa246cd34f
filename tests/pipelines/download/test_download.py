"""``kedro run --pipeline download``: one node, its parameters and catalog entry, run against
the local test server."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from music_genre import download as dl
from music_genre.pipelines.download import create_pipeline
from music_genre.pipelines.download.nodes import download_gtzan
from tests.gtzan_server import _sha
from tests.helpers import PROJECT_ROOT


def test_pipeline_node_and_conf(server, archive, tmp_path):
    (node,) = create_pipeline().nodes
    assert node.name == "download_gtzan"
    assert node.inputs == ["params:download"] and node.outputs == ["download_receipt"]

    root = PROJECT_ROOT
    loader = OmegaConfigLoader(str(root / "conf"), base_env="base", default_run_env="base")
    params = loader["parameters"]["download"]
    assert params["sha256"] == dl.GTZAN_SHA256 and params["urls"][0].startswith("https://")
    assert loader["catalog"]["download_receipt"]["type"] == "json.JSONDataset"
    assert dl.load_defaults(root)["dest_dir"] == str(root / "data/01_raw/gtzan")

    server.files["/genres.tar.gz"] = archive
    receipt = download_gtzan({**params, "urls": [server.url("/genres.tar.gz")],
                              "sha256": _sha(archive), "dest_dir": str(tmp_path / "gtzan"),
                              "archive_path": str(tmp_path / "genres.tar.gz"),
                              "progress": False})  # fmt: skip
    assert receipt["n_files"] == 3 and receipt["sha256"] == _sha(archive)
    assert receipt["path"] == str(tmp_path / "gtzan") and receipt["seconds"] >= 0
    with pytest.raises(ValueError, match="unknown download parameter"):
        download_gtzan({"dest": "x"})
