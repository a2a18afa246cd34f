"""/predict latency through a real uvicorn server, next to the same work done in-process.

    python benchmarks/serving.py --env demo                 # every trained model of data/demo
    python benchmarks/serving.py --env demo --models rf,cnn --requests 20

For each model: the in-process time of ``inference.predict_bytes`` on a 30 s WAV (decode,
analysis, model: everything the endpoint does apart from HTTP) alternating request by request
with /predict at concurrency 1, then /predict with 8 concurrent clients (p50/p95/p99,
throughput, errors), against ``python -m music_genre.api`` on 127.0.0.1. Server overhead = p50 at concurrency 1 over the
in-process p50, minus one (target < 30 %). The last line printed is the JSON of every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import start_api_server  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def clip_30s() -> bytes:
    """A 30 s, 22 050 Hz mono 16-bit WAV (a synthetic 'disco' track from the demo generator)."""
    from music_genre.demo import synth_track

    y = synth_track("disco", np.random.default_rng(7), duration_s=30.0)
    buf = io.BytesIO()
    sf.write(buf, y, 22050, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {f"p{q}_ms": round(float(np.percentile(arr, q)), 1) for q in (50, 95, 99)}


def in_process_service(env: str):
    from music_genre.api.service import ApiSettings, load_service

    return load_service(ApiSettings(project_path=str(PROJECT), env=env))


def interleaved_c1(service, url: str, name: str, data: bytes, n: int) -> tuple[dict, dict]:
    """Concurrency 1: in-process and HTTP requests alternate, so both see the same machine load
    (the shared machine's load drifts more than the overhead being measured)."""
    import httpx

    from music_genre import inference

    loaded = service.available[name]
    local, remote, errors = [], [], 0
    with httpx.Client() as client:
        def http_once() -> float:
            nonlocal errors
            start = time.perf_counter()
            response = client.post(url + "/predict", files={"file": ("clip.wav", data)},
                                   data={"model": name}, timeout=300)
            errors += response.status_code != 200
            return time.perf_counter() - start

        def local_once() -> float:
            start = time.perf_counter()
            inference.predict_bytes(data, loaded)
            return time.perf_counter() - start

        http_once(), local_once()  # warm
        for _ in range(n):
            local.append(local_once())
            remote.append(http_once())
    return ({**percentiles(local), "version": loaded.version},
            {**percentiles(remote), "requests": n, "errors": errors,
             "mean_ms": round(1000 * statistics.fmean(remote), 1)})


def load_test(url: str, model: str, data: bytes, concurrency: int, n: int) -> dict:
    import httpx

    def one(client: httpx.Client) -> tuple[float, int]:
        start = time.perf_counter()
        response = client.post(url + "/predict", files={"file": ("clip.wav", data)},
                               data={"model": model}, timeout=300)
        return time.perf_counter() - start, response.status_code

    clients = [httpx.Client() for _ in range(concurrency)]
    try:
        one(clients[0])  # warm the connection
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda i: one(clients[i % concurrency]), range(n)))
        wall = time.perf_counter() - start
    finally:
        for c in clients:
            c.close()
    latencies = [t for t, status in results if status == 200]
    errors = sum(status != 200 for _, status in results)
    return {**percentiles(latencies or [float("nan")]), "requests": n, "errors": errors,
            "throughput_rps": round(n / wall, 2),
            "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="demo", help="Kedro environment with trained models")
    parser.add_argument("--models", help="comma-separated (default: every trained model)")
    parser.add_argument("--requests", type=int, default=30, help="requests per measurement")
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT / ".numba_cache"))

    data = clip_30s()
    service = in_process_service(args.env)
    names = [m for m in (args.models.split(",") if args.models else service.available)
             if m in service.available]
    process, url = start_api_server(args.env, timeout_s=300)
    results: dict = {}
    try:
        for name in names:
            local, c1 = interleaved_c1(service, url, name, data, args.requests)
            row = {"in_process": local, "server": {"c1": c1},
                   "overhead_c1": round(c1["p50_ms"] / local["p50_ms"] - 1, 3),
                   "overhead_c1_ms": round(c1["p50_ms"] - local["p50_ms"], 1)}
            print(f"{name:9s} in-process p50 {local['p50_ms']:7.1f} ms | server c=1 p50 "
                  f"{c1['p50_ms']:7.1f} p95 {c1['p95_ms']:7.1f} p99 {c1['p99_ms']:7.1f} ms "
                  f"(overhead {100 * row['overhead_c1']:+.1f} %), {c1['errors']} errors",
                  flush=True)
            for c in (int(x) for x in args.concurrency.split(",") if int(x) > 1):
                s = row["server"][f"c{c}"] = load_test(url, name, data, c,
                                                       args.requests * max(1, c // 4))
                print(f"{name:9s} server c={c}: p50 {s['p50_ms']:7.1f} p95 {s['p95_ms']:7.1f} "
                      f"p99 {s['p99_ms']:7.1f} ms, {s['throughput_rps']} req/s, "
                      f"{s['errors']} errors", flush=True)
            results[name] = row
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(json.dumps({"benchmark": "serving", "env": args.env, "clip_s": 30.0,
                      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                      "models": results}))


if __name__ == "__main__":
    main()
