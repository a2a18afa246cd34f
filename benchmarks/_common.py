"""Shared bits of the benchmarks: machine description, timing, peak memory, the JSON line.

Every benchmark measures the project against its baseline IN THE SAME RUN (interleaved repeats)
and prints its figures as one final JSON line; the machines are shared and noisy, so the ratios
are the figures to compare, not the absolute times.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_MINI = PROJECT_ROOT.parent / "shared" / "data" / "gtzan_mini"

os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def machine() -> dict:
    """CPU model, cores, memory and load: enough to tell two runs' machines apart."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    info["load_avg_1m"] = round(os.getloadavg()[0], 2)  # others' work on a shared machine
    return info


def summary(times: list[float]) -> dict:
    return {"best": min(times), "median": statistics.median(times), "all": times}


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def emit(result: dict) -> None:
    """The benchmark's figures as the final line of output."""
    result.setdefault("machine", machine())
    print(json.dumps(result, default=lambda o: round(float(o), 4)))


def run_with_peak_memory(cmd: list[str], interval: float = 0.1, **kwargs) -> dict:
    """Run a command; sample the RSS summed over it and all its descendants (joblib workers).

    Returns wall seconds, the peak of that sum, the peak of the largest single process, the
    peak summed USS (pages no other process shares) and the peak summed anonymous memory (heap
    and stacks: what the processes need in RAM, without the file pages of memory-mapped stores,
    which the kernel can drop and re-read at any time), the last two sampled every ~1 s.
    """
    import subprocess

    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)
    peak_sum = peak_one = peak_uss = peak_anon = 0
    last_uss = 0.0
    lines: list[str] = []

    import threading

    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss, uss, anon = [], [], []
        take_uss = time.perf_counter() - last_uss > 1.0
        for p in procs:
            try:
                if take_uss:
                    info = p.memory_full_info()
                    rss.append(info.rss)
                    uss.append(info.uss)
                    anon.append(_anonymous_bytes(p.pid))
                else:
                    rss.append(p.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        if take_uss:
            last_uss = time.perf_counter()
            peak_uss = max(peak_uss, sum(uss))
            peak_anon = max(peak_anon, sum(anon))
        if rss:
            peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss))
        time.sleep(interval)
    proc.wait()
    reader.join(timeout=5)
    return {"returncode": proc.returncode, "output": "".join(lines),
            "wall_s": time.perf_counter() - start, "peak_rss_mb": peak_sum / 2**20,
            "peak_rss_largest_process_mb": peak_one / 2**20, "peak_uss_mb": peak_uss / 2**20,
            "peak_anonymous_mb": peak_anon / 2**20}


def _anonymous_bytes(pid: int) -> int:
    """``Anonymous:`` of /proc/PID/smaps_rollup (Linux), 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def start_api_server(env: str, extra: list[str] | tuple[str, ...] = (),
                     timeout_s: float = 600) -> tuple[subprocess.Popen, str]:
    """``python -m music_genre.api`` on a free loopback port; returns (process, url) once
    ``/health`` answers."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "music_genre.api", "--env", env, "--port", str(port),
         "--project-path", str(PROJECT_ROOT), "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the server did not start in {timeout_s:.0f} s")
