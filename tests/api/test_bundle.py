"""A served model carries its input contract in its bundle: today's conf cannot change its answers.

The models of the session's trained test project (``api_project``) are served from their
bundles; changing ``extraction.n_mels`` / ``n_mfcc`` in conf afterwards and restarting the service
changes no answer (each still equals the evaluation node's probabilities), and the service says
where conf and bundle differ. A bundle this code cannot serve as trained is refused with a
message naming the difference and the retrain command.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from music_genre import inference
from music_genre.api.service import ApiSettings, load_service
from music_genre.models import bundle
from tests.helpers import latest

SERVED = ["cnn", "ensemble", "mlp", "rf", "rf_robust"]


def _env_with(api_project, name: str, extraction: dict) -> str:
    """A copy of the ``apitest`` env (same data folder, so the same trained models) whose
    ``params:extraction`` is changed by ``extraction``."""
    target = api_project / "conf" / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(api_project / "conf" / "apitest", target)
    params = yaml.safe_load((target / "parameters.yml").read_text())
    params["extraction"] = {**params["extraction"], **extraction}
    (target / "parameters.yml").write_text(yaml.safe_dump(params))
    return name


def test_changing_n_mels_and_n_mfcc_in_conf_changes_no_answer(api_project, api_data,
                                                               test_tracks):
    before = load_service(ApiSettings(project_path=str(api_project), env="apitest",
                                      warmup=False))
    env = _env_with(api_project, "apitest_changed", {"n_mels": 64, "n_mfcc": 13})
    # a restart under the changed conf; the warm-up (which died with "'mfcc14_delta_mean' is not
    # in list" when the service read extraction from conf) runs every model once
    after = load_service(ApiSettings(project_path=str(api_project), env=env, warmup=True))
    assert sorted(before.available) == sorted(after.available) == SERVED
    for name in SERVED:
        assert after.models[name].loaded.version == before.models[name].loaded.version
        if name != "ensemble":  # its members report their own
            assert after.models[name].conf_differences == [
                "n_mels: 128 in the bundle, 64 in conf", "n_mfcc: 20 in the bundle, 13 in conf"]
            assert before.models[name].conf_differences == []
    for name in SERVED:
        predictions = pd.read_csv(latest(api_data / "07_model_output" / name /
                                         "test_predictions.csv", "test_predictions.csv"))
        expected = predictions.set_index("track_id")
        for track in test_tracks.iloc[[0, 4]].itertuples():
            data = open(track.path, "rb").read()
            was = inference.predict_bytes(data, before.available[name], track.path,
                                          before.settings.policy)
            now = inference.predict_bytes(data, after.available[name], track.path,
                                          after.settings.policy)
            assert now.probabilities == was.probabilities, name  # bit for bit
            genres = after.available[name].genres
            np.testing.assert_allclose(  # and still the evaluation node's probabilities
                [now.probabilities[g] for g in genres],
                expected.loc[track.track_id, genres].to_numpy(float), atol=2e-5, err_msg=name)


def _newer_version(models, name: str, change) -> None:
    """A newer version of ``<name>.model`` under ``models``: the newest one's files with its
    contract changed."""
    folder = models / f"{name}.bundle"
    newest = sorted(folder.iterdir())[-1]
    fake = folder / "9999-12-31T23.59.59.999Z"
    shutil.copytree(newest, fake)
    path = fake / f"{name}.bundle" / bundle.CONTRACT_FILE
    contract = json.loads(path.read_text())
    change(contract)
    path.write_text(json.dumps(contract))


def test_an_incompatible_bundle_is_refused_naming_the_difference(api_project, api_data):
    # a copy of the trained models in an env of its own (the session's other services, e.g.
    # the live server, keep loading the untouched ones)
    env = _env_with(api_project, "apitest_refused", {})
    (api_project / "conf" / env / "globals.yml").write_text("data: data/refused\nseed: 42\n")
    models = api_project / "data" / "refused" / "06_models"
    for name in ("rf", "mlp", "cnn"):
        shutil.copytree(api_data / "06_models" / f"{name}.bundle", models / f"{name}.bundle")
    _newer_version(models, "rf", lambda c: c.update(format=0))
    _newer_version(models, "mlp", lambda c: c.pop("extraction"))
    settings = ApiSettings(project_path=str(api_project), env=env, warmup=False,
                           models=["rf", "mlp", "cnn"])
    service = load_service(settings)
    assert sorted(service.available) == ["cnn"]  # the others still load
    rf, mlp = service.models["rf"], service.models["mlp"]
    assert "bundle format 0, this code reads format 1" in rf.reason
    assert f"kedro run --pipeline rf --env {env}" in rf.reason
    assert rf.train_command == f"kedro run --pipeline rf --env {env}"
    assert "its contract lacks ['extraction']" in mlp.reason
    assert f"kedro run --pipeline mlp --env {env}" in mlp.reason
    # asked for anyway: 503 with the reason and the command (said once)
    from fastapi.testclient import TestClient

    from music_genre.api.app import create_app

    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", files={"file": ("a.wav", b"RIFF....")},
                               data={"model": "rf"})
    assert response.status_code == 503
    body = response.json()
    assert "bundle format 0" in body["error"] and body["error"].count("kedro run") == 1
    assert body["train_command"] == f"kedro run --pipeline rf --env {env}"


def test_a_model_saved_without_a_contract_is_refused():
    with pytest.raises(bundle.IncompatibleBundle,
                       match=r"'rf' was saved without its serving contract.*"
                             r"`kedro run --pipeline rf --env demo`"):
        inference.loaded_model("rf", object(), env="demo")


def test_a_model_saved_before_bundles_is_refused_with_the_retrain_command(api_project):
    """An env whose data folder holds only an old-style ``06_models/rf.pkl`` (no bundle)."""
    env = _env_with(api_project, "apitest_legacy", {})
    (api_project / "conf" / env / "globals.yml").write_text("data: data/legacy\nseed: 42\n")
    old = api_project / "data" / "legacy" / "06_models" / "rf.pkl" / "2026-01-01T00.00.00.000Z"
    old.mkdir(parents=True)
    (old / "rf.pkl").write_bytes(b"an old pickle")
    service = load_service(ApiSettings(project_path=str(api_project), env=env, warmup=False,
                                       models=["rf", "mlp"]))
    assert service.available == {}
    assert "saved before models carried their serving contract" in service.models["rf"].reason
    assert f"kedro run --pipeline rf --env {env}" in service.models["rf"].reason
    assert "has not been trained yet" in service.models["mlp"].reason


def test_the_ensemble_serves_the_member_trainings_it_was_built_over(api_project, api_data,
                                                                     test_tracks):
    """rf retrained after the ensemble was built: the service serves the new rf as ``rf`` and
    the ensemble over the rf training it averaged (its pinned ``bundle_id``); with that training
    deleted the ensemble is refused with the command that rebuilds it, the members still
    served."""
    env = _env_with(api_project, "apitest_pinned", {})
    (api_project / "conf" / env / "globals.yml").write_text("data: data/pinned\nseed: 42\n")
    data = api_project / "data" / "pinned"
    for name in ("rf.bundle", "mlp.bundle", "cnn.bundle", "ensemble.json"):
        shutil.copytree(api_data / "06_models" / name, data / "06_models" / name)
    shutil.copytree(api_data / "08_reporting", data / "08_reporting")  # the models' metrics
    settings = ApiSettings(project_path=str(api_project), env=env, warmup=False,
                           models=["rf", "mlp", "cnn", "ensemble"])
    before = load_service(settings)
    old_rf = before.available["rf"]
    pinned = json.loads(next((data / "06_models" / "ensemble.json").rglob("ensemble.json"))
                        .read_text())["member_bundles"]
    assert pinned["rf"] == old_rf.contract["bundle_id"]  # the ensemble named its members

    _newer_version(data / "06_models", "rf", lambda c: c.update(bundle_id="a-retrained-rf"))
    after = load_service(settings)
    assert after.available["rf"].version == "9999-12-31T23.59.59.999Z"  # rf: the newest
    members = after.available["ensemble"].extras["members"]
    assert members["rf"].version == old_rf.version  # the ensemble: the training it averaged
    assert members["rf"].contract["bundle_id"] == pinned["rf"]
    track = test_tracks.iloc[0]
    payload = open(track.path, "rb").read()
    assert (inference.predict_bytes(payload, after.available["ensemble"], track.path).probabilities
            == inference.predict_bytes(payload, before.available["ensemble"],
                                       track.path).probabilities)

    shutil.rmtree(data / "06_models" / "rf.bundle" / old_rf.version)
    gone = load_service(settings)
    assert sorted(gone.available) == ["cnn", "mlp", "rf"]
    assert "built over other trainings of ['rf']" in gone.models["ensemble"].reason
    assert "kedro run --pipelines ensemble,model_selection" in gone.models["ensemble"].reason
