"""Bounded cost per request and memory that comes back (issue 16), through a real uvicorn server.

    python benchmarks/hardening.py --env demo                   # every trained model of data/demo
    python benchmarks/hardening.py --env demo --models rf,cnn --repeats 20

1. Generates (once, cached under ``data/benchmarks/``) a 60-minute 44.1 kHz stereo MP3 at
   LAME's lowest constant bitrate (~14 MB: the issue's 11 MB file is the same length) with
   libsndfile (no ffmpeg; ~10 min of CPU), and one just under the 50 MB upload cap (~3.5 h: the
   first file's frames repeated).
2. Starts ``python -m music_genre.api`` (the service as shipped, ``--no-warmup`` off) and, for
   every model, posts the long MP3 with ``?spectrogram=true`` (what the web page sends): time
   per request and the server's RSS growth over its RSS after warm-up (sampled every 50 ms by
   psutil, so the peak is within a sample of the truth).
3. Two long MP3 requests at once (peak growth), the 50 MB MP3 once.
4. ``--repeats`` long-MP3 requests in a row (models in turn), then RSS after them vs after
   warm-up (target: within 300 MB).

The last line printed is the JSON of every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PROJECT_ROOT, machine, start_api_server  # noqa: E402

CACHE = PROJECT_ROOT / "data" / "benchmarks"
MB = 2**20


def long_mp3(path: Path, minutes: int, compression_level: float) -> Path:
    """``minutes`` of a 44.1 kHz stereo tone-and-noise signal written as MP3 block by block."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sr, rng = 44100, np.random.default_rng(0)
    t = np.arange(60 * sr) / sr
    tmp = path.with_suffix(".part")
    with sf.SoundFile(tmp, "w", samplerate=sr, channels=2, format="MP3",
                      compression_level=compression_level, bitrate_mode="CONSTANT") as f:
        for minute in range(minutes):
            tone = 0.25 * np.sin(2 * np.pi * (110 + 5 * minute) * t) * (
                1 + 0.5 * np.sin(2 * np.pi * 2 * t))
            noise = 0.03 * rng.standard_normal((len(t), 2))
            f.write((tone[:, None] + noise).astype(np.float32))
    tmp.rename(path)
    return path


def near_cap(hour: Path, path: Path, cap_mb: float) -> Path:
    """A file just under the upload cap: the hour's MP3 frames repeated (MP3 is a sequence of
    independent frames, so the concatenation is one long valid stream; its first header still
    says 60 minutes). At 32 kbit/s, 49 MB is ~3.5 hours of audio."""
    if not path.exists():
        data = hour.read_bytes()
        target = int((cap_mb - 1) * MB)
        path.write_bytes((data * (target // len(data) + 1))[:target])
    return path


class RssSampler:
    """Peak RSS of a process, sampled every ``period`` seconds in a thread."""

    def __init__(self, pid: int, period: float = 0.05):
        import psutil

        self.process, self.period = psutil.Process(pid), period
        self.peak, self._stop = 0, threading.Event()

    def rss(self) -> int:
        return self.process.memory_info().rss

    def __enter__(self):
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def post(url: str, path: Path, model: str) -> tuple[float, dict]:
    import httpx

    start = time.perf_counter()
    response = httpx.post(url + "/predict?spectrogram=true", data={"model": model},
                          files={"file": (path.name, path.read_bytes())}, timeout=600)
    elapsed = time.perf_counter() - start
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"{model}: HTTP {response.status_code}: {body}")
    return elapsed, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="demo")
    parser.add_argument("--models", help="comma-separated (default: every trained model)")
    parser.add_argument("--repeats", type=int, default=20, help="large requests in a row")
    parser.add_argument("--cap-mb", type=float, default=50.0, help="the server's upload cap")
    parser.add_argument("--unbounded", action="store_true",
                        help="baseline: no decode bound (needs GBs of memory per request)")
    args = parser.parse_args()
    import httpx

    t0 = time.perf_counter()
    hour = long_mp3(CACHE / "sixty-minutes-stereo-44k.mp3", 60, 0.99)
    big = near_cap(hour, CACHE / "near-cap-stereo-44k.mp3", args.cap_mb)
    files = {p.name: round(p.stat().st_size / MB, 1) for p in (hour, big)}
    print(f"files {files} (made in {time.perf_counter() - t0:.0f} s, cached)", flush=True)

    extra = []
    if args.unbounded:  # the baseline: the service as it was, decoding whole files
        os.environ.update(MUSIC_GENRE_API_MAX_ANALYSED_S="1000000",
                          MUSIC_GENRE_API_MAX_DECODED_SAMPLES=str(2**62))
    process, url = start_api_server(args.env, extra)
    sampler_pid = process.pid
    results: dict = {"files_mb": files, "models": {}}
    try:
        available = httpx.get(url + "/health").json()["models"]
        names = [m for m in (args.models.split(",") if args.models else available)
                 if m in available]
        sampler = RssSampler(sampler_pid)
        start_rss = sampler.rss()
        # warm-up: one 30 s clip per model (what api.warmup does at start-up, plus HTTP)
        clip = CACHE / "clip-30s.wav"
        if not clip.exists():
            sf.write(clip, 0.2 * np.random.default_rng(1).standard_normal(30 * 22050), 22050)
        for name in names:
            post(url, clip, name)
        warm_rss = sampler.rss()
        print(f"RSS at start {start_rss / MB:.0f} MB, after warm-up {warm_rss / MB:.0f} MB",
              flush=True)
        for name in names:
            before = sampler.rss()
            with sampler:
                seconds, body = post(url, hour, name)
            row = {"seconds": round(seconds, 2), "server_seconds": body["seconds"],
                   "peak_growth_mb": round((sampler.peak - before) / MB, 1),
                   "rss_after_mb": round(sampler.rss() / MB, 1),
                   "analysed_s": body["analysed_s"], "duration_s": body["duration_s"],
                   "truncated": body["truncated"], "band_limit_hz": body["band_limit_hz"],
                   "spectrogram": body["spectrogram"] is not None}
            results["models"][name] = row
            print(f"{name:9s} 60-min MP3: {row['seconds']:6.2f} s, peak RSS growth "
                  f"{row['peak_growth_mb']:7.1f} MB, analysed {row['analysed_s']} of "
                  f"{row['duration_s']} s", flush=True)
        if not args.unbounded:  # the baseline affords one request per model, no more
            # two at once
            pair = (names * 2)[:2]
            before = sampler.rss()
            with sampler, ThreadPoolExecutor(2) as pool:
                times = [f.result()[0] for f in [pool.submit(post, url, hour, m) for m in pair]]
            results["two_at_once"] = {"models": pair, "seconds": [round(t, 2) for t in times],
                                      "peak_growth_mb": round((sampler.peak - before) / MB, 1)}
            print(f"two at once {pair}: {results['two_at_once']}", flush=True)
            before = sampler.rss()
            with sampler:
                seconds, body = post(url, big, names[0])
            results["near_cap_mp3"] = {"model": names[0], "seconds": round(seconds, 2),
                                       "peak_growth_mb": round((sampler.peak - before) / MB, 1),
                                       "analysed_s": body["analysed_s"]}
            print(f"{files[big.name]} MB MP3 ({names[0]}): {results['near_cap_mp3']}", flush=True)
            # many large requests in a row: does the memory come back?
            for i in range(args.repeats):
                post(url, hour, names[i % len(names)])
            after = sampler.rss()
            results["memory"] = {"rss_start_mb": round(start_rss / MB, 1),
                                 "rss_after_warmup_mb": round(warm_rss / MB, 1),
                                 f"rss_after_{args.repeats}_large_mb": round(after / MB, 1),
                                 "growth_over_warmup_mb": round((after - warm_rss) / MB, 1)}
            print(f"after {args.repeats} large requests: {results['memory']}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(json.dumps({"benchmark": "hardening", "env": args.env, "machine": machine(),
                      "unbounded": args.unbounded,
                      **results}))


if __name__ == "__main__":
    main()
