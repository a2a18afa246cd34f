"""Benchmark 5: how data processing grows from 100 to 1000 synthetic 30 s tracks.

    python benchmarks/scale.py [--n-tracks 1000] [--small 100] [--reruns 1] [--baseline DIR]

Writes ``--small`` and ``--n-tracks`` synthetic 30 s clips (``music_genre.demo``: seeded tone +
noise mixes, GTZAN layout) and runs ``kedro run --pipeline data_processing`` on each (the
commands of ``benchmarks/incremental.py``: a private data tree, a first run on an empty cache,
then ``--reruns`` re-runs over the unchanged audio). Reported per size: the first run's wall
and CPU seconds, per-node times, the re-run, peak memory (RSS summed over the command and its
joblib workers) and the load average; and the growth from the small to the large collection
(time per track of each node should stay flat, memory should not grow with the tracks).

``--baseline DIR``: the same commands with another checkout's ``src/`` and ``conf/`` (e.g. the
commit before the one-pass extraction, unpacked with ``git archive``), in the same run, so the
ratio of first runs is measured on the same machine load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import incremental  # noqa: E402
from _common import emit  # noqa: E402


def run_size(n: int, reruns: int, audio_root: Path, project: Path | None) -> dict:
    # the baseline: its conf/ and its package first on the path
    with incremental.checkout(project), \
            tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        runs = incremental.measure(audio_root, reruns, Path(tmp))
    first, again = runs[0], runs[1:]
    return {
        "tracks": n,
        "first_run_s": first["wall_s"],
        "first_run_cpu_s": first["cpu_s"],
        "first_run_peak_rss_mb": first["peak_rss_mb"],
        "load_avg_before_first_run": first["load_avg_before"],
        "first_run_nodes_s": first["nodes_s"],
        "first_run_ms_per_track": 1000 * first["wall_s"] / n,
        "first_run_cpu_ms_per_track": 1000 * first["cpu_s"] / n,
        "rerun_s": again[-1]["wall_s"] if again else None,
        "rerun_nodes_s": again[-1]["nodes_total_s"] if again else None,
        "rerun_nodes_fraction": (again[-1]["nodes_total_s"] / first["nodes_total_s"]
                                 if again else None),
        "rerun_peak_rss_mb": again[-1]["peak_rss_mb"] if again else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tracks", type=int, default=1000)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--reruns", type=int, default=1)
    ap.add_argument("--baseline", type=Path, help="another checkout (src/ and conf/) to compare")
    args = ap.parse_args()

    from music_genre.demo import write_demo_collection

    result: dict = {"benchmark": "scale"}
    with tempfile.TemporaryDirectory(prefix="bench_scale_audio_") as tmp:
        for n in (args.small, args.n_tracks):
            root = Path(tmp) / f"audio{n}"
            write_demo_collection(root, n_per_genre=max(1, n // 10), broken_file=False)
            for name, project in (("project", None), ("baseline", args.baseline)):
                if name == "baseline" and project is None:
                    continue
                print(f"{name}: {n} synthetic 30 s tracks", flush=True)
                result[f"{name}_{n}"] = run_size(n, args.reruns, root, project)
    small, large = result[f"project_{args.small}"], result[f"project_{args.n_tracks}"]
    result["growth_first_run_per_track"] = (large["first_run_ms_per_track"]
                                            / small["first_run_ms_per_track"])
    result["growth_peak_rss"] = large["first_run_peak_rss_mb"] / small["first_run_peak_rss_mb"]
    if args.baseline:
        for n in (args.small, args.n_tracks):
            base, ours = result[f"baseline_{n}"], result[f"project_{n}"]
            result[f"first_run_fraction_of_baseline_{n}"] = ours["first_run_s"] / base["first_run_s"]
            result[f"first_run_cpu_fraction_of_baseline_{n}"] = (ours["first_run_cpu_s"]
                                                                 / base["first_run_cpu_s"])
    emit(result)


if __name__ == "__main__":
    main()
