"""Benchmark: the whole default ``kedro run`` on a collection, from an empty data tree.

    python benchmarks/default_run.py [--root DIR] [--baseline DIR] [--cold-numba]

Runs ``kedro run --params raw_root=...`` (every pipeline of the default run: data processing,
the MusiCNN embeddings, every model, the ensemble, the reports) into a throw-away data tree (a
copy of ``conf/`` whose ``globals.data`` points to a temporary folder, ``--conf-source``).
Figures: the command's wall time and CPU seconds (all its processes: robust to other users' load
on a shared machine), peak memory, the load average before it, each node's wall time (from
Kedro's log timestamps, node + its dataset I/O) grouped by stage (Kedro start-up, data processing,
MusiCNN embedding, each model's train + evaluate, reports), the CNN's epochs and each model's
test-split accuracy with its 95 % Wilson interval (the 20-track test split: ungrouped, wide; the
grouped CV figure of the CNN is ``benchmarks/cnn_cv.py``'s).

``--baseline DIR``: then the same command with another checkout's ``src/`` and ``conf/`` (e.g.
``git worktree add /tmp/base <commit>``), in the same run. ``--cold-numba``: an empty numba
cache (a first run on a fresh machine compiles librosa's kernels: ~10-20 s more).
Target (issue 17): the default run on the 100-track sample ≤ 240 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import incremental  # noqa: E402
from _common import SHARED_MINI, emit  # noqa: E402

# the stages of the default run, by node name (namespaced model nodes: <model>.<node>)
DATA_NODES = {"probe_tracks", "extract_tracks", "assemble_dataset", "assemble_rich_tables",
              "make_split", "split_dataset"}


def stage_of(node: str) -> str:
    if "." in node:
        return node.split(".", 1)[0]  # rf, mlp, cnn, transfer, ...: train + evaluate
    if node in DATA_NODES or node.startswith(("probe", "extract", "assemble_dataset",
                                              "assemble_rich", "split")):
        return "data_processing"
    if "musicnn" in node:
        return "musicnn_embedding"
    return "other:" + node


def _latest_json(folder: Path) -> dict | None:
    """A versioned JSON dataset's newest version (``<name>.json/<version>/<name>.json``)."""
    if not folder.exists():
        return None
    files = sorted(folder.glob("*/" + folder.name)) if folder.is_dir() else [folder]
    return json.loads(files[-1].read_text()) if files else None


def model_figures(data: Path) -> dict:
    from music_genre.evaluation import wilson_interval

    out = {}
    for folder in sorted((data / "08_reporting").glob("*/metrics.json")):
        metrics = _latest_json(folder) or {}
        acc, n = metrics.get("test_accuracy", metrics.get("accuracy")), metrics.get("n_test")
        row = {"test_accuracy": acc, "n_test": n}
        if acc is not None and n:
            row["test_ci95"] = wilson_interval(round(acc * n), int(n))
        info = _latest_json(folder.parent / "train_info.json") or {}
        for key in ("epochs_run", "train_seconds"):
            if key in info:
                row[key] = info[key]
        out[folder.parent.name] = row
    return out


def one_run(raw_root: Path, project: Path | None, cold_numba: bool) -> dict:
    # the baseline: its conf/ and its package first on the path
    with incremental.checkout(project) as own_root, \
            tempfile.TemporaryDirectory(prefix="bench_default_run_") as tmp:
        tmp = Path(tmp)
        conf = incremental.private_conf(tmp)
        # both checkouts read the same MusiCNN weights (fetched once into the project's .cache)
        extra = {"MUSIC_GENRE_CACHE": os.environ.get("MUSIC_GENRE_CACHE",
                                                     str(own_root / ".cache"))}
        if cold_numba:
            extra["NUMBA_CACHE_DIR"] = str(tmp / "numba")
        run = incremental.kedro_run(conf, raw_root, tmp / "run.log", pipeline=None,
                                    extra_env=extra)
        run["models"] = model_figures(tmp / "data")
    stages: dict[str, float] = {}
    for node, seconds in run["nodes_s"].items():
        stages[stage_of(node)] = stages.get(stage_of(node), 0.0) + seconds
    run["stages_s"] = dict(sorted(stages.items(), key=lambda kv: -kv[1]))
    run["outside_nodes_s"] = run["wall_s"] - run["nodes_total_s"]  # start-up, hooks, exit
    print(f"{'baseline' if project else 'project'}: {run['wall_s']:.1f} s wall, "
          f"{run['cpu_s']:.1f} CPU-s, load {run['load_avg_before']:.1f} before; stages "
          + ", ".join(f"{k} {v:.1f}" for k, v in run["stages_s"].items())
          + f"; outside nodes {run['outside_nodes_s']:.1f}", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=SHARED_MINI, help="GTZAN-layout folder")
    ap.add_argument("--baseline", type=Path, help="another checkout (src/ and conf/) to compare")
    ap.add_argument("--cold-numba", action="store_true", help="an empty numba cache")
    args = ap.parse_args()

    result = {"benchmark": "default_run", "source": str(args.root), "target_s": 240,
              "project": one_run(args.root.resolve(), None, args.cold_numba)}
    if args.baseline:
        result["baseline"] = one_run(args.root.resolve(), args.baseline.resolve(),
                                     args.cold_numba)
        result["wall_fraction_of_baseline"] = (result["project"]["wall_s"]
                                               / result["baseline"]["wall_s"])
        result["cpu_fraction_of_baseline"] = (result["project"]["cpu_s"]
                                              / result["baseline"]["cpu_s"])
    emit(result)


if __name__ == "__main__":
    main()
