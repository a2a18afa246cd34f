"""A real HTTP server on 127.0.0.1 serving a tiny GTZAN-like archive (a few generated WAV files
in the original ``genres/<genre>/`` layout): it supports ``Range`` (or not), and can drop the
connection half way through the first response, or serve corrupted bytes. Used by the download
module's tests and the download pipeline's: a pytest plugin of tests/conftest.py, so the fixtures
``archive`` and ``server`` are available to every test."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
import wave
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
def server(monkeypatch):
    no_proxy(monkeypatch)
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def no_proxy(monkeypatch) -> None:
    """127.0.0.1 directly, whatever proxy the environment names."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
