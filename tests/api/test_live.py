"""The service as a real uvicorn process on 127.0.0.1: HTTP, concurrency, a streamed oversized
upload, and the web page in a real headless Chromium."""

from __future__ import annotations

import select
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.helpers import latest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def files(api_data) -> list[Path]:
    split = pd.read_csv(latest(api_data / "05_model_input" / "split.csv", "split.csv"))
    manifest = pd.read_csv(latest(api_data / "03_primary" / "manifest.csv", "manifest.csv"))
    test = split[split["split"] == "test"].merge(manifest[["track_id", "path"]], on="track_id")
    return [Path(p) for p in sorted(test["path"])[:2]]


def predict(url: str, path: Path, model: str) -> dict:
    response = httpx.post(url + "/predict", files={"file": (path.name, path.read_bytes())},
                          data={"model": model}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def test_live_server_endpoints(live_server, files):
    health = httpx.get(live_server + "/health").json()
    assert health["status"] == "ok" and health["models"] == [
        "cnn", "ensemble", "mlp", "rf", "rf_robust"]
    assert httpx.get(live_server + "/docs").status_code == 200
    page = httpx.get(live_server + "/")
    assert page.status_code == 200 and "<canvas" in page.text
    body = predict(live_server, files[0], "cnn")
    assert body["model"] == "cnn" and len(body["probabilities"]) == 10
    missing = httpx.post(live_server + "/predict", data={"model": "rf"})
    assert missing.status_code == 400 and "no file" in missing.json()["error"]


def test_concurrent_requests_equal_sequential_ones(live_server, files):
    combos = [("rf", files[0]), ("rf_robust", files[1]), ("mlp", files[0]), ("cnn", files[1])]
    sequential = {(m, f): predict(live_server, f, m)["probabilities"] for m, f in combos}
    jobs = [combos[i % len(combos)] for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(predict, live_server, f, m) for m, f in jobs]
        # the event loop keeps serving while 20 predictions are queued or running
        assert httpx.get(live_server + "/health", timeout=30).status_code == 200
        results = [f.result() for f in futures]
    for (m, f), body in zip(jobs, results, strict=True):
        assert body["model"] == m
        np.testing.assert_allclose(list(body["probabilities"].values()),
                                   list(sequential[(m, f)].values()), atol=1e-6)


def test_streamed_upload_over_the_limit_is_cut_off(live_server):
    """A chunked upload with no Content-Length: the server answers 413 and closes the
    connection long before the client could send its 40 MB (what was sent beyond the limit sat
    in the kernel's socket buffers, unread)."""
    host, port = urlparse(live_server).hostname, urlparse(live_server).port
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
    chunk = bytes(64 * 1024)
    sent, answer = 0, b""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall((f"POST /predict HTTP/1.1\r\nHost: {host}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n").encode())
        payload = head
        try:
            while sent < 40 * 2**20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
                sent += len(payload)
                payload = chunk
                if select.select([sock], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        try:
            while part := sock.recv(65536):
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"MB limit" in answer
    assert sent < 40 * 2**20


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run "
                                                        "installs it)")
def test_web_page_in_a_headless_browser(live_server, files, tmp_path):
    from playwright.sync_api import sync_playwright

    expected = predict(live_server, files[1], "rf")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(live_server + "/")
            page.wait_for_selector("#model option[value=rf]", state="attached")
            assert page.locator("#model option[value=transfer]").is_disabled()
            page.select_option("#model", "rf")
            page.set_input_files("#file", str(files[1]))
            page.click("#predict")
            page.wait_for_selector("#result:not([hidden])", timeout=60_000)
            genre = expected["genre"]
            assert page.locator("#genre").get_attribute("data-genre") == genre
            # the highlighted (top) bar is the predicted genre, with its probability
            assert page.locator(".label.top").inner_text() == genre
            width = page.locator(f".track[data-genre={genre}] .bar").evaluate(
                "el => parseFloat(el.style.width)")
            assert width == pytest.approx(100 * expected["probabilities"][genre], abs=0.06)
            assert page.locator(".track").count() == 10
            # the spectrogram was drawn: the canvas holds more than one colour
            colours = page.evaluate("""() => {
                const c = document.getElementById('spectrogram');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return new Set(Array.from(d.filter((_, i) => i % 4 === 1))).size; }""")
            assert colours > 20
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:4] == b"\x89PNG"
            keep = Path(__import__("os").environ.get("MUSIC_GENRE_SCREENSHOT", ""))
            if keep.name:
                shutil.copy(shot, keep)
        finally:
            browser.close()
