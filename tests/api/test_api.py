"""The prediction service in-process (TestClient): every endpoint, every bad input, and
agreement with the pipelines' own features, spectrograms and test-set probabilities."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tempfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from music_genre import audio, inference
from tests.api.conftest import MAX_UPLOAD_MB, WINDOW_S
from tests.helpers import latest

GENRES = ["blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock"]
SR = 22050


def encode(y: np.ndarray, sr: int = SR, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def post(client, data: bytes, model: str | None = None, name: str = "clip.wav", **kwargs):
    form = {"model": model} if model else {}
    return client.post("/predict", files={"file": (name, data, "application/octet-stream")},
                       data=form, **kwargs)


@pytest.fixture(scope="module")
def signals(test_tracks) -> list[np.ndarray]:
    return [sf.read(p, dtype="float32")[0] for p in test_tracks["path"][:3]]


def test_health_and_models(client, api_data):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["env"] == "apitest"
    assert health["models"] == ["cnn", "ensemble", "mlp", "rf", "rf_robust"]

    body = client.get("/models").json()
    assert body["genres"] == GENRES
    rows = {m["name"]: m for m in body["models"]}
    assert list(rows) == ["rf", "rf_robust", "mlp", "cnn", "transfer", "ensemble"]
    for name, family in (("rf", "sklearn-table"), ("rf_robust", "sklearn-table"),
                         ("mlp", "keras-table"), ("cnn", "keras-spectrogram")):
        row = rows[name]
        newest = sorted((api_data / "06_models" / f"{name}.bundle").iterdir())[-1].name
        assert row["contract"]["family"] == family and row["conf_differences"] == []
        assert row["contract"]["extraction"]["duration_s"] == WINDOW_S
        assert row["available"] and row["version"] == newest
        metrics = json.loads(latest(api_data / "08_reporting" / name / "metrics.json",
                                    "metrics.json").read_text())
        assert row["metrics"]["accuracy"] == metrics["accuracy"]
        assert row["metrics"]["n_test"] == 10 and row["metrics_version"] == newest
    # no model_selection in this project: the default is the best by test accuracy, and says so
    best = max(("rf", "rf_robust", "mlp", "cnn", "ensemble"),
               key=lambda n: rows[n]["metrics"]["accuracy"])
    assert body["default_chosen_by"].startswith("test-split accuracy")
    assert rows[body["default_model"]]["metrics"]["accuracy"] == rows[best]["metrics"]["accuracy"]
    assert health["default_model"] == body["default_model"]
    assert rows[body["default_model"]]["default"]
    assert not rows["transfer"]["available"]
    assert rows["transfer"]["train_command"] == "kedro run --pipeline transfer --env apitest"


def test_docs_offer_upload_and_model_choice(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI's assets come from the service itself, never a CDN: /docs works offline
    assert "cdn.jsdelivr.net" not in docs.text
    for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', docs.text):
        assert client.get(asset).status_code == 200, asset
    assert re.search(r'src="/[^"]+swagger-ui-bundle\.js"', docs.text)
    schema = client.get("/openapi.json").json()
    ref = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    form = schema["components"]["schemas"][ref["schema"]["$ref"].split("/")[-1]]
    assert form["properties"]["file"]["contentMediaType"] == "application/octet-stream"
    assert form["properties"]["model"]["enum"] == ["rf", "rf_robust", "mlp", "cnn", "transfer",
                                                   "ensemble"]


@pytest.mark.parametrize("model", ["rf", "rf_robust", "mlp", "cnn", "ensemble"])
def test_predict_equals_the_pipeline_test_predictions(client, api_data, test_tracks, model):
    """Uploading a test-split file gives the probabilities the evaluation node computed."""
    predictions = pd.read_csv(latest(api_data / "07_model_output" / model /
                                     "test_predictions.csv", "test_predictions.csv"))
    expected = predictions.set_index("track_id")
    for track in test_tracks.iloc[[0, 4]].itertuples():  # an .au and a .wav file
        name = os.path.basename(track.path)
        response = post(client, open(track.path, "rb").read(), model, name)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == model and body["version"]
        assert list(body["probabilities"]) == GENRES
        got = np.array([body["probabilities"][g] for g in GENRES])
        np.testing.assert_allclose(got, expected.loc[track.track_id, GENRES].to_numpy(float),
                                   atol=2e-5)
        assert body["genre"] == expected.loc[track.track_id, "predicted"]
        assert body["duration_s"] == pytest.approx(WINDOW_S, abs=1e-3)
        assert body["windows"] == 1 and body["analysed_s"] == pytest.approx(WINDOW_S, abs=1e-3)


def test_default_model_is_the_best(client, test_tracks):
    body = post(client, open(test_tracks["path"][1], "rb").read()).json()
    assert body["model"] == client.get("/models").json()["default_model"]


def test_service_features_and_spectrograms_equal_the_pipeline(client, api_data, test_tracks):
    """One implementation: the service's model inputs for a file are the stored ones, computed
    with the extraction parameters each model's bundle carries (the run's: 6 s windows)."""
    models = client.app.state.service.models
    params = models["rf"].loaded.extraction
    assert params.duration_s == WINDOW_S
    assert all(models[m].loaded.extraction == params for m in ("mlp", "rf_robust", "cnn"))
    features = pd.read_parquet(latest(api_data / "04_feature" / "features.parquet",
                                      "features.parquet")).set_index("track_id")
    rich = pd.read_parquet(latest(api_data / "04_feature" / "rich_features.parquet",
                                  "rich_features.parquet")).set_index("track_id")
    degraded = pd.read_parquet(latest(api_data / "04_feature" / "degraded_features.parquet",
                                      "degraded_features.parquet"))
    spec_dir = latest(api_data / "04_feature" / "spectrograms", "spectrograms")
    ids = json.loads((spec_dir / "track_ids.json").read_text())
    stored = np.load(spec_dir / "data.npy")
    for track in test_tracks.iloc[:3].itertuples():
        y = inference.decode(open(track.path, "rb").read(), params.sample_rate)
        stored_row = features.loc[track.track_id, audio.FEATURE_NAMES].to_numpy(np.float64)
        np.testing.assert_array_equal(inference.feature_rows(y, params).x[0], stored_row)
        # and the mlp input is that row as the model got it in training (float32)
        mlp = models["mlp"].loaded
        model_input = inference.input_builder(mlp).build(y, params, mlp).x
        np.testing.assert_array_equal(model_input, stored_row[None].astype(np.float32))
        # the rf reads its columns of the rich table: recomputed identically by the service
        rf = models["rf"].loaded
        assert rf.contract["family"] == "sklearn-table"
        columns = rf.contract["input"]["columns"]
        assert len(columns) > len(audio.FEATURE_NAMES)
        rich_row = rich.loc[track.track_id, columns].to_numpy(np.float64)
        np.testing.assert_array_equal(inference.input_builder(rf).build(y, params, rf).x,
                                      rich_row[None].astype(np.float32))
        # rf_robust hears every upload through the 8 kHz chain: the degraded_features row
        robust = models["rf_robust"].loaded
        assert robust.contract["input"]["degradation"] == "resample_8k"
        low = degraded[degraded["degradation"] == "resample_8k"].set_index("track_id")
        np.testing.assert_array_equal(
            inference.input_builder(robust).build(y, params, robust).x,
            low.loc[track.track_id, columns].to_numpy(np.float64)[None].astype(np.float32))
        spec = inference.spectrogram_batch(y, params)
        assert spec.x.shape == (1, params.n_mels, params.n_frames)
        np.testing.assert_array_equal(spec.x[0], stored[ids.index(track.track_id)])


def test_every_format_rate_and_channel_count(client, signals):
    y = signals[0]
    reference = post(client, encode(y), "rf").json()["probabilities"]
    resampled = audio.load_audio(encode(y), sr=44100)
    uploads = {
        "clip.flac": (encode(y, fmt="FLAC"), True),
        "clip.au": (encode(y, fmt="AU"), True),
        "stereo.wav": (encode(np.stack([y, y], axis=1)), True),  # identical channels → same mono
        "clip.ogg": (encode(y, fmt="OGG", subtype="VORBIS"), False),
        "clip.mp3": (encode(y, fmt="MP3", subtype="MPEG_LAYER_III"), False),
        "44k-stereo.wav": (encode(np.stack([resampled, 0.5 * resampled], axis=1), sr=44100),
                           False),
        "48k-float.wav": (encode(audio.load_audio(encode(y), sr=48000), 48000,
                                 subtype="FLOAT"), False),
    }
    for name, (data, lossless) in uploads.items():
        response = post(client, data, "rf", name)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert body["duration_s"] == pytest.approx(WINDOW_S, abs=0.06), name
        assert sum(body["probabilities"].values()) == pytest.approx(1.0)
        if lossless:
            np.testing.assert_allclose(list(body["probabilities"].values()),
                                       list(reference.values()), atol=1e-12, err_msg=name)


def test_long_audio_is_the_mean_of_its_windows(client, signals):
    """A 15.5 s upload → two full windows and a looped 3.5 s tail, probabilities averaged."""
    tail = signals[2][: int(3.5 * SR)]
    song = np.concatenate([signals[0], signals[1], tail])
    body = post(client, encode(song), "rf").json()
    assert body["windows"] == 3 and body["duration_s"] == pytest.approx(15.5, abs=1e-3)
    parts = [post(client, encode(part), "rf").json()["probabilities"]
             for part in (signals[0], signals[1], tail)]
    mean = np.mean([[p[g] for g in GENRES] for p in parts], axis=0)
    np.testing.assert_allclose([body["probabilities"][g] for g in GENRES], mean, atol=1e-12)


def test_short_clip_is_looped_like_training_data(client, signals):
    clip = signals[1][: 4 * SR]
    body = post(client, encode(clip), "cnn").json()
    assert body["windows"] == 1 and body["duration_s"] == pytest.approx(4.0)
    looped = np.pad(clip, (0, int(WINDOW_S * SR) - len(clip)), mode="wrap")
    same = post(client, encode(looped), "cnn").json()
    np.testing.assert_allclose(list(body["probabilities"].values()),
                               list(same["probabilities"].values()), atol=1e-6)


def test_spectrogram_for_the_page(client, signals):
    body = post(client, encode(signals[0]), "mlp", params={"spectrogram": "true"}).json()
    spec = body["spectrogram"]
    import base64

    image = np.frombuffer(base64.b64decode(spec["data"]), np.uint8)
    n_frames = 1 + int(WINDOW_S * SR) // 512
    assert (spec["n_mels"], spec["n_columns"]) == (128, n_frames // 4)
    assert image.size == spec["n_mels"] * spec["n_columns"]
    assert image.min() < 64 and image.max() > 192  # min-max scaled to the whole 0-255 range


# ---------------------------------------------------------------------------------------------
# Bad input: a clear JSON error, never a 500, nothing on disk
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def upload_tmp(tmp_path, monkeypatch):
    """Point the temporary-file folder (where multipart spools uploads) to an empty folder."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []  # nothing left on disk


def test_bad_inputs(client, signals, upload_tmp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (client.post("/predict"), 400, "no file"),
        (client.post("/predict", data={"model": "rf"}), 400, "no file"),
        (client.post("/predict", data={"file": "not a file"}), 400, "must be a file"),
        (post(client, b""), 400, "empty file"),
        (post(client, b"this is plain text, not audio\n" * 40, "rf", "notes.mp3"), 415,
         "notes.mp3"),
        (post(client, b"\x89PNG\r\n\x1a\n" + bytes(3000), "rf", "image.wav"), 415, "decode"),
        (post(client, encode(signals[0])[:44], "rf", "header-only.wav"), 415, "header-only"),
        (post(client, encode(signals[0][: 2 * SR]), "rf", "short.wav"), 422, "at least 3 s"),
        (post(client, encode(signals[0]), "svm"), 422,
         "choose one of rf, rf_robust, mlp, cnn, transfer"),
        (post(client, encode(signals[0]), "transfer"), 503,
         "kedro run --pipeline transfer --env apitest"),
        (post(client, encode(signals[0][: 4 * SR]), "rf", "../../escape.wav"), 200, None),
        # over Starlette's 1 MB in-memory threshold: spooled to a temporary file, then gone
        (post(client, encode(np.tile(signals[0], 6)), "rf", "36s.wav"), 200, None),
    ]
    for response, status, text in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        if text:
            assert text in response.json()["error"], response.json()
    assert cases[8][0].json()["choices"] == ["rf", "rf_robust", "mlp", "cnn", "transfer",
                                             "ensemble"]
    assert not (tmp_path.parent.parent / "escape.wav").exists()  # the name is only a label


def test_upload_over_the_limit_is_refused_from_its_content_length(client, upload_tmp):
    big = bytes(int((MAX_UPLOAD_MB + 0.5) * 2**20))
    response = post(client, big, "rf", "big.wav")
    assert response.status_code == 413
    assert f"{MAX_UPLOAD_MB:g} MB limit" in response.json()["error"]


def test_chunked_upload_over_the_limit_stops_being_read(client):
    """No Content-Length: the app counts bytes as they arrive and stops at the limit."""
    app = client.app
    chunk, total = 64 * 1024, 20 * 2**20
    boundary = b"b0undary"
    head = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
            b'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n')
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        body = head if pulled == 1 else bytes(chunk)
        return {"type": "http.request", "body": body, "more_body": pulled * chunk < total}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/predict", "raw_path": b"/predict",
             "query_string": b"", "root_path": "", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1234), "app": app,
             "headers": [(b"content-type", b"multipart/form-data; boundary=" + boundary),
                         (b"transfer-encoding", b"chunked")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["limit_bytes"] == int(MAX_UPLOAD_MB * 2**20)
    assert pulled * chunk <= MAX_UPLOAD_MB * 2**20 + 2 * chunk  # the other ~18 MB never read
