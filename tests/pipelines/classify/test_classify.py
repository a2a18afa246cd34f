"""The classify pipeline and ``python -m music_genre classify`` on a folder a user could have:
real GTZAN tracks, an MP3, a FLAC in a nested folder, a broken file, a too-short file and a file
that is not audio. A throw-away project trains a small ``rf`` on the demo's synthetic audio
(6 s analysis windows) and the folder is classified with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from music_genre import inference
from music_genre.models import bundle
from music_genre.pipelines.classify import nodes
from tests.helpers import latest, make_project, run

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock"]
ENV = "clstest"
PARAMS = {
    "extraction": {"duration_s": 6.0},
    "execution": {"n_jobs": 1, "progress": False},
    "rf": {"random_forest": {"n_estimators": 20, "n_jobs": 1}, "pca_components": 5},
    "augmentation": {"degradations": []},
    "classify": {"progress": False},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_project(tmp_path_factory.mktemp("classify_project"))
    env = project / "conf" / ENV
    env.mkdir()
    (env / "globals.yml").write_text(f"data: data/{ENV}\nseed: 42\n")
    (env / "catalog.yml").write_text(yaml.safe_dump({"raw_audio": {
        "type": "music_genre.datasets.AudioFolderDataset",
        "path": "${globals:data}/01_raw/gtzan",
        "synthetic": {"n_per_genre": 3, "duration_s": 6.0, "seed": 42},
    }}))
    (env / "parameters.yml").write_text(yaml.safe_dump(PARAMS))
    run(project, "rf", env=ENV)
    return project


@pytest.fixture(scope="module")
def music(tmp_path_factory, gtzan_mini) -> dict[str, Path]:
    """A user's folder: 3 real WAVs, an MP3, a nested FLAC, a broken WAV, a 1 s WAV and a .txt."""
    root = tmp_path_factory.mktemp("music")
    real = sorted((gtzan_mini / "genres_original").glob("*/*.wav"))
    picks = [real[0], real[len(real) // 2], real[-1]]
    files = {}
    for i, src in enumerate(picks):
        files[f"real{i}"] = root / "real" / src.name
        files[f"real{i}"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, files[f"real{i}"])
    y, sr = sf.read(picks[1], dtype="float32")
    files["mp3"] = root / "from phone" / "clip.mp3"
    files["mp3"].parent.mkdir()
    sf.write(files["mp3"], y[: sr * 12], sr, format="MP3")
    files["flac"] = root / "nested" / "deeper" / "track.FLAC"
    files["flac"].parent.mkdir(parents=True)
    sf.write(files["flac"], y[: sr * 10], sr, format="FLAC")
    files["broken"] = root / "broken.wav"
    files["broken"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 50)
    files["short"] = root / "nested" / "short.wav"
    sf.write(files["short"], y[: sr // 2], sr)
    (root / "nested" / "notes.txt").write_text("not audio")
    files["root"] = root
    return files


def _classify(project: Path, music_root: Path, **extra) -> pd.DataFrame:
    params = {"classify": {"input": str(music_root), "progress": False, **extra}}
    run(project, "classify", env=ENV, params=params)
    return pd.read_csv(latest(project / "data" / ENV / "07_model_output" / "classify"
                              / "results.csv", "results.csv"))


@pytest.fixture(scope="module")
def first_run(project, music) -> pd.DataFrame:
    # two workers, as on a user's machine (a folder of 7 files would otherwise run in-process)
    return _classify(project, music["root"], n_jobs=2, min_files_for_parallel=1, playlists=True)


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_every_audio_file_is_listed_once(first_run, music):
    expected = {str(music[k].resolve()) for k in
                ("real0", "real1", "real2", "mp3", "flac", "broken", "short")}
    assert set(first_run["path"]) == expected  # recursive, suffix case-insensitive, no .txt
    assert len(first_run) == 7
    assert first_run["status"].value_counts().to_dict() == {"ok": 5, "unreadable": 2}


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_unreadable_files_say_why(first_run, music):
    bad = first_run.set_index("path").loc[[str(music["broken"].resolve()),
                                           str(music["short"].resolve())]]
    assert (bad["status"] == "unreadable").all()
    assert "cannot decode" in bad["error"].iloc[0] and str(music["broken"]) in bad["error"].iloc[0]
    assert "at least 3 s" in bad["error"].iloc[1]


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_rows_carry_top3_model_and_seconds(first_run, project, music):
    ok = first_run[first_run["status"] == "ok"].set_index("path")
    assert set(ok["genre"]) <= set(GENRES)
    p = ok[["probability", "probability_2", "probability_3"]].to_numpy()
    assert (np.diff(p, axis=1) <= 0).all() and (p.sum(axis=1) <= 1.0 + 1e-3).all()
    assert (ok[["genre", "genre_2", "genre_3"]].nunique(axis=1) == 3).all()
    versions = sorted(d.name for d in (project / "data" / ENV / "06_models" / "rf.bundle").iterdir())
    assert (ok["model"] == "rf").all() and (ok["model_version"] == versions[-1]).all()
    # 30 s real tracks (6 s windows: 5), a 12 s MP3 (2 windows), a 10 s FLAC (2: the last 4 s
    # looped up to 6 s, as a short training clip is)
    assert ok.loc[str(music["real0"].resolve()), "n_windows"] == 5
    assert ok.loc[str(music["mp3"].resolve()), "analysed_s"] == pytest.approx(12.0, abs=0.1)
    assert ok.loc[str(music["flac"].resolve()), "n_windows"] == 2
    assert ok.loc[str(music["flac"].resolve()), "analysed_s"] == pytest.approx(10.0, abs=0.01)
    # where each file's spectrum ends (the service's estimate): real GTZAN at 22.05 kHz
    # ends near 10 kHz, never above the Nyquist frequency
    band = ok.loc[str(music["real0"].resolve()), "band_limit_hz"]
    assert 5000 < band <= 11025


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_answers_equal_the_service_function(first_run, project, music):
    """What the workers wrote equals inference.predict_bytes on an independently loaded model."""
    model_dir = project / "data" / ENV / "06_models" / "rf.bundle"
    loaded = inference.loaded_model("rf", bundle.load(latest(model_dir, "rf.bundle")))
    assert loaded.extraction.duration_s == 6.0  # the run's windows, from the bundle
    for key in ("real1", "mp3"):
        path = music[key].resolve()
        pred = inference.predict_bytes(path.read_bytes(), loaded, str(path))
        row = first_run.set_index("path").loc[str(path)]
        assert row["genre"] == pred.genre
        assert row["probability"] == pytest.approx(max(pred.probabilities.values()), abs=1e-4)


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_summary_chart_and_playlists(first_run, project):
    reporting = project / "data" / ENV / "08_reporting" / "classify"
    assert latest(reporting / "summary.png", "summary.png").stat().st_size > 10_000
    ok = first_run[first_run["status"] == "ok"]
    written = {p.stem: p.read_text() for p in (reporting / "playlists").glob("*.m3u")}
    assert set(written) == set(ok["genre"])
    for genre, text in written.items():
        lines = text.splitlines()
        assert lines[0] == "#EXTM3U"
        assert sorted(lines[2::2]) == sorted(ok.loc[ok["genre"] == genre, "path"])


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_a_second_run_reuses_rows_of_the_same_model_version(first_run, project, music):
    """Same size and modification time: taken from the previous table, not analysed again (the
    file's bytes are now garbage, so an analysis would call it unreadable); a newer time: read."""
    target = music["real2"]
    stat = target.stat()
    target.write_bytes(os.urandom(stat.st_size))  # same size ...
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and time
    again = _classify(project, music["root"])
    pd.testing.assert_frame_equal(again, first_run)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = _classify(project, music["root"]).set_index("path")
    assert third.loc[str(target.resolve()), "status"] == "unreadable"
    assert (third["status"] == "ok").sum() == 4


@pytest.mark.slow  # kedro run --pipeline rf, then classify, in sessions
def test_cli_prints_one_line_per_file_and_json(project, music, first_run):
    folder = music["root"] / "nested"
    cmd = [sys.executable, "-m", "music_genre", "classify", str(folder), str(music["mp3"]),
           "--env", ENV, "--project-path", str(project)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=600)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout + out.stderr  # track.FLAC, short.wav, clip.mp3
    assert "WARNING" not in out.stderr, out.stderr
    assert sum(line.startswith("UNREADABLE") for line in lines) == 1
    as_json = subprocess.run(cmd + ["--json"], capture_output=True, text=True, env=env,
                             check=True, timeout=600)
    records = json.loads(as_json.stdout)
    assert {Path(r["path"]).name for r in records} == {"track.FLAC", "short.wav", "clip.mp3"}
    flac = next(r for r in records if r["path"].endswith("track.FLAC"))
    before = first_run.set_index("path").loc[str(music["flac"].resolve())]
    assert flac["genre"] == before["genre"]  # the CLI is the pipeline


def test_find_audio_files_names_a_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nodes.find_audio_files({"input": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="classify.input is not set"):
        nodes.find_audio_files({"input": None})


def test_default_model_follows_the_ranking_then_accuracy():
    ranking = {"ranking": [{"model": "cnn", "grouped": None, "split": {"accuracy": 0.5}},
                           {"model": "rf", "grouped": None, "split": {"accuracy": 0.9}}]}
    assert inference.choose_default_model(["rf", "cnn"], ranking)[0] == "cnn"
    assert inference.choose_default_model(["rf"], ranking)[0] == "rf"  # cnn not trained here
    assert inference.choose_default_model(["rf", "cnn"], None, {"rf": 0.6, "cnn": 0.8}) == \
        ("cnn", "test-split accuracy (no model_selection)")
    assert inference.choose_default_model(["rf", "cnn"], ranking, preferred="rf")[0] == "rf"
    assert inference.choose_default_model([]) == (None, "test-split accuracy (no model_selection)")
