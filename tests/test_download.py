"""The GTZAN download step against a real HTTP server on 127.0.0.1 (no internet needed).

The server serves a tiny archive built here (a few generated WAV files in the original
``genres/<genre>/`` layout), supports ``Range`` (or not), and can drop the connection half way
through the first response, or serve corrupted bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from music_genre import download as dl

TRACKS = ["blues/blues.00000.wav", "blues/blues.00001.wav", "rock/rock.00000.wav"]


def _wav_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(bytes((seed * 7 + i) % 256 for i in range(4410)))  # 0.1 s
    return buf.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def archive() -> bytes:
    members = {f"genres/{t}": _wav_bytes(i) for i, t in enumerate(TRACKS)}
    members["genres/bextract_single.mf"] = b"not audio\n"
    return _tar_gz(members)


class Server:
    """What the handler serves and how it misbehaves; it records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.first_response: dict[str, bytes] = {}  # path -> bytes served on the first GET only
        self.ranges = True
        self.drop_first_at: int | None = None  # close after this many bytes on the first GET
        self.stall_s = 0.0  # ... after stalling this long (the client's read timeout fires)
        self.requests: list[tuple[str, str | None]] = []
        self.httpd: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.lstrip('/')}"


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            first = not any(p == self.path for p, _ in state.requests)
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            data = state.files.get(self.path)
            if first and self.path in state.first_response:
                data = state.first_response[self.path]
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng and state.ranges:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/gzip")
            self.end_headers()
            if first and state.drop_first_at is not None:
                self.wfile.write(body[: state.drop_first_at])
                self.wfile.flush()
                self.close_connection = True  # the client sees EOF before Content-Length
                time.sleep(state.stall_s)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _fetch(server: Server, tmp_path: Path, sha256: str | None, **kw) -> dl.DownloadResult:
    kw.setdefault("urls", [server.url("/genres.tar.gz")])
    return dl.fetch_gtzan(
        sha256=sha256,
        dest_dir=tmp_path / "gtzan",
        archive_path=tmp_path / "genres.tar.gz",
        timeout=kw.pop("timeout", 2),
        read_timeout=kw.pop("read_timeout", 5),
        retries=2,
        progress=False,
        **kw,
    )


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("genres.tar.gz"))


# (a) ----------------------------------------------------------------------------------------
def test_good_download_verifies_and_extracts(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    result = _fetch(server, tmp_path, _sha(archive))

    dest = tmp_path / "gtzan"
    assert result.root == dest and result.layout == "genres" and result.n_files == 3
    assert result.sha256 == _sha(archive) and not result.skipped
    for i, track in enumerate(TRACKS):
        assert (dest / "genres" / track).read_bytes() == _wav_bytes(i)
    assert dl.find_audio(dest) == ("genres", 3)
    assert _leftovers(tmp_path) == []  # archive deleted after extraction (keep_archive=False)
    assert not (dest / ".extracting").exists()
    receipt = result.receipt()
    assert json.loads(json.dumps(receipt))["n_files"] == 3

    # A second run finds the audio in place and does not touch the network.
    n_requests = len(server.requests)
    again = _fetch(server, tmp_path, _sha(archive))
    assert again.skipped and again.n_files == 3 and len(server.requests) == n_requests


def test_kept_archive_is_reused_without_network(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    first = _fetch(server, tmp_path, _sha(archive), keep_archive=True)
    assert first.archive == tmp_path / "genres.tar.gz" and first.archive.is_file()
    n_requests = len(server.requests)
    again = _fetch(server, tmp_path, _sha(archive), force=True, urls=["http://gtzan.invalid/x"])
    assert again.n_files == 3 and again.url.startswith("file://")
    assert len(server.requests) == n_requests


def test_kaggle_zip_layout(server, tmp_path):
    members = {f"Data/genres_original/{t}": _wav_bytes(i) for i, t in enumerate(TRACKS)}
    members["Data/features_30_sec.csv"] = b"filename,label\n"
    data = _zip(members)
    server.files["/gtzan.zip"] = data
    result = _fetch(server, tmp_path, _sha(data), urls=[server.url("/gtzan.zip")])
    dest = tmp_path / "gtzan"
    assert (result.layout, result.n_files) == ("genres_original", 3)
    assert (dest / "genres_original" / TRACKS[0]).read_bytes() == _wav_bytes(0)
    assert (dest / "features_30_sec.csv").is_file()


# (b) ----------------------------------------------------------------------------------------
def test_corrupted_download_fails_checksum_and_leaves_nothing(server, archive, tmp_path):
    bad = bytearray(archive)
    bad[len(bad) // 2] ^= 0xFF
    server.files["/genres.tar.gz"] = bytes(bad)

    with pytest.raises(dl.ChecksumMismatchError) as err:
        _fetch(server, tmp_path, _sha(archive))

    msg = str(err.value)
    assert "checksum mismatch" in msg and _sha(archive) in msg and _sha(bytes(bad)) in msg
    assert "bad file was deleted" in msg and "by hand" in msg
    assert _leftovers(tmp_path) == []  # neither genres.tar.gz nor genres.tar.gz.part
    assert dl.find_audio(tmp_path / "gtzan") == (None, 0)
    # retried exactly once, from scratch (no Range on the second request)
    assert server.requests == [("/genres.tar.gz", None), ("/genres.tar.gz", None)]


def test_transient_corruption_is_fixed_by_one_clean_retry(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    server.first_response["/genres.tar.gz"] = archive[:-10] + b"0123456789"
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and len(server.requests) == 2


def test_bad_mirror_then_good_mirror(server, archive, tmp_path):
    server.files["/good.tar.gz"] = archive
    urls = [server.url("/missing.tar.gz"), server.url("/good.tar.gz")]
    result = _fetch(server, tmp_path, _sha(archive), urls=urls)
    assert result.url == urls[1] and result.n_files == 3


# (c) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stall", [0.0, 1.0], ids=["dropped", "stalled"])
def test_interrupted_download_resumes_with_range(server, archive, tmp_path, stall):
    server.files["/genres.tar.gz"] = archive
    server.drop_first_at = len(archive) // 3
    server.stall_s = stall  # a stalled transfer hits read_timeout=0.3 s, then resumes
    result = _fetch(server, tmp_path, _sha(archive), read_timeout=0.3)

    assert result.n_files == 3 and result.sha256 == _sha(archive)
    assert server.requests == [
        ("/genres.tar.gz", None),
        ("/genres.tar.gz", f"bytes={len(archive) // 3}-"),
    ]


def test_partial_file_from_an_earlier_run_is_resumed(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    (tmp_path / "genres.tar.gz.part").write_bytes(archive[:100])
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and server.requests == [("/genres.tar.gz", "bytes=100-")]


def test_server_without_range_restarts_cleanly(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    server.ranges = False
    server.drop_first_at = len(archive) // 2
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and len(server.requests) == 2  # asked for a range, got it all


# (d) ----------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mirrors_fail_at_once_with_manual_instructions(tmp_path):
    urls = [
        f"http://127.0.0.1:{_closed_port()}/genres.tar.gz",
        "http://gtzan.invalid/genres.tar.gz",
    ]
    t0 = time.monotonic()
    with pytest.raises(dl.MirrorsUnreachableError) as err:
        dl.fetch_gtzan(urls=urls, dest_dir=tmp_path / "gtzan",
                       archive_path=tmp_path / "genres.tar.gz", timeout=2, progress=False)  # fmt: skip
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    for url in urls:
        assert url in msg
    assert "connection refused" in msg and "could not be resolved" in msg
    assert "by hand" in msg
    assert str(tmp_path / "gtzan" / "genres_original") in msg
    assert str(tmp_path / "gtzan" / "genres") in msg
    assert 'kedro run --params "raw_root=/path/to/gtzan"' in msg
    assert _leftovers(tmp_path) == []


def test_cli_reports_unreachable_mirror(tmp_path, capsys):
    rc = dl.main(["--url", f"http://127.0.0.1:{_closed_port()}/g.tar.gz", "--sha256", "none",
                  "--dest", str(tmp_path / "gtzan"), "--archive", str(tmp_path / "g.tar.gz")])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "no mirror could be reached" in err and "by hand" in err


# (e) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../evil.wav", "genres/../../evil.wav", "/tmp/evil_gtzan.wav"])
def test_path_traversal_member_is_rejected(server, tmp_path, evil):
    data = _tar_gz({"genres/blues/blues.00000.wav": _wav_bytes(0), evil: b"pwned"})
    server.files["/genres.tar.gz"] = data
    with pytest.raises(dl.UnsafeArchiveError, match="outside"):
        _fetch(server, tmp_path, _sha(data))
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path.parent / "evil.wav").exists()
    assert not Path("/tmp/evil_gtzan.wav").exists()
    assert dl.find_audio(tmp_path / "gtzan") == (None, 0)
    assert not (tmp_path / "gtzan" / ".extracting").exists()


def test_zip_path_traversal_is_rejected(tmp_path):
    path = tmp_path / "evil.zip"
    path.write_bytes(_zip({"Data/genres_original/blues/blues.00000.wav": b"x", "../evil": b"x"}))
    with pytest.raises(dl.UnsafeArchiveError):
        dl.extract_archive(path, tmp_path / "gtzan")
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "gtzan" / "Data").exists()


def test_tar_links_are_skipped(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("genres/blues/blues.00000.wav")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("genres/blues/link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    path = tmp_path / "links.tar.gz"
    path.write_bytes(buf.getvalue())
    assert dl.extract_archive(path, tmp_path / "gtzan") == ("genres", 1)
    assert not (tmp_path / "gtzan" / "genres" / "blues" / "link.wav").exists()


# Kedro wiring ---------------------------------------------------------------------------------
def test_pipeline_node_and_conf(server, archive, tmp_path):
    from kedro.config import OmegaConfigLoader

    from music_genre.pipelines.download import create_pipeline
    from music_genre.pipelines.download.nodes import download_gtzan

    (node,) = create_pipeline().nodes
    assert node.name == "download_gtzan"
    assert node.inputs == ["params:download"] and node.outputs == ["download_receipt"]

    root = Path(__file__).resolve().parents[1]
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
