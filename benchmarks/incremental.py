"""Benchmark 2: an incremental re-run of data processing over unchanged audio.

    python benchmarks/incremental.py [--root DIR | --synthetic N] [--reruns 2]

Runs ``kedro run --pipeline data_processing --params raw_root=...`` on a collection (default: the
100 real tracks in ``../shared/data/gtzan_mini``, else 100 synthetic tracks; ``--synthetic N``
writes N synthetic 30 s tracks) into a throw-away data tree (a copy of ``conf/`` whose
``globals.data`` points to a temporary folder, passed with ``--conf-source``), first on an
empty cache, then ``--reruns`` more times over the unchanged audio. Figures: the whole command's
wall time for each, and each node's time (from Kedro's log timestamps, node + its dataset I/O).
Target: a re-run under 5 % of the first run. Kedro's start-up (imports, hooks, catalog) is a
fixed cost of every command, so both the whole command and the nodes' total are compared.
Beside the wall times: the CPU seconds of each command (all its processes, joblib workers
included: robust to other users' load on a shared machine), its peak memory (RSS summed over
its processes) and the 1-minute load average before it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PROJECT_ROOT, SHARED_MINI, emit, run_with_peak_memory  # noqa: E402

LOGGING_YML = """
version: 1
disable_existing_loggers: False
formatters:
  timed: {format: "%(asctime)s.%(msecs)03d|%(name)s|%(message)s", datefmt: "%Y-%m-%d %H:%M:%S"}
handlers:
  console: {class: logging.StreamHandler, level: INFO, formatter: timed, stream: ext://sys.stdout}
loggers:
  kedro: {level: INFO}
  music_genre: {level: INFO}
root: {handlers: [console]}
"""
NODE_LINE = re.compile(r"^(\S+ \S+)\|kedro\.\S+\|Running node: (\w+)(?:: \w+\(\[([^\]]*))?")


def node_label(name: str, inputs: str | None) -> str:
    """A node's name, with the model it belongs to for the template's nodes (Kedro logs
    ``train_model`` for every model): ``cnn.train_model`` from its ``cnn.*`` or ``params:cnn``
    input."""
    tokens = (inputs or "").split(";")
    if tokens and "." in tokens[0]:
        return f"{tokens[0].split('.', 1)[0]}.{name}"
    for token in tokens:
        if token.startswith("params:") and token[7:] not in ("genres", "seed", "model"):
            if name in ("train_model", "evaluate_model"):
                return f"{token[7:]}.{name}"
            break
    return name
LAST_LINE = re.compile(r"^(\S+ \S+)\|kedro\.\S+\|Pipeline execution completed")


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def kedro_run(conf: Path, raw_root: Path, log: Path, pipeline: str | None = "data_processing",
              extra_env: dict[str, str] | None = None) -> dict:
    """One ``kedro run`` (``pipeline`` None: the default run): whole-command wall time and
    per-node times from the log."""
    env = dict(os.environ, KEDRO_LOGGING_CONFIG=str(conf.parent / "logging.yml"),
               **(extra_env or {}))
    cmd = [shutil.which("kedro") or "kedro", "run", *(["--pipeline", pipeline] if pipeline else []),
           "--conf-source", str(conf), "--params", f"raw_root={raw_root}"]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = run_with_peak_memory(cmd, cwd=PROJECT_ROOT, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    wall, output = proc["wall_s"], proc["output"]
    log.write_text(output)
    if proc["returncode"]:
        raise RuntimeError(f"kedro run failed (log: {log}):\n{output[-3000:]}")
    marks = []
    for line in output.splitlines():
        if m := NODE_LINE.match(line):
            marks.append((node_label(m.group(2), m.group(3)), _stamp(m.group(1))))
        elif m := LAST_LINE.match(line):
            marks.append(("end", _stamp(m.group(1))))
    nodes: dict[str, float] = {}
    for (name, t), (_, nxt) in zip(marks, marks[1:]):
        nodes[name] = nodes.get(name, 0.0) + nxt - t
    return {"wall_s": wall, "nodes_s": nodes, "nodes_total_s": sum(nodes.values()),
            "cpu_s": cpu, "peak_rss_mb": proc["peak_rss_mb"], "load_avg_before": load}


@contextlib.contextmanager
def checkout(project: Path | None):
    """Run ``kedro_run`` against another checkout (its conf/ and its package first on the path)
    inside the block; ``None``: this project. Restores both afterwards."""
    global PROJECT_ROOT
    saved_root, saved_path = PROJECT_ROOT, os.environ.get("PYTHONPATH")
    if project is not None:
        PROJECT_ROOT = project
        os.environ["PYTHONPATH"] = str(project / "src")
    try:
        yield saved_root
    finally:
        PROJECT_ROOT = saved_root
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path


def private_conf(tmp: Path) -> Path:
    """A copy of conf/ under ``tmp`` whose ``globals.data`` is ``tmp/data``, and the timed
    logging config beside it: a private data tree for one benchmark."""
    conf = tmp / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf)
    globals_yml = conf / "base" / "globals.yml"
    globals_yml.write_text(re.sub(r"(?m)^data:.*$", f"data: {tmp / 'data'}",
                                  globals_yml.read_text()))
    (tmp / "logging.yml").write_text(LOGGING_YML)
    return conf


def measure(raw_root: Path, reruns: int, tmp: Path) -> list[dict]:
    """A first run and ``reruns`` re-runs of data processing on ``raw_root``, in a private data
    tree under ``tmp`` (a copy of conf/ whose globals.data points there)."""
    conf = private_conf(tmp)
    runs = []
    for i in range(1 + reruns):
        runs.append(kedro_run(conf, raw_root, tmp / f"run{i}.log"))
        r = runs[-1]
        print(f"run {i + 1} ({'first' if i == 0 else 're-run'}): command {r['wall_s']:.1f} s "
              f"(CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB, load average "
              f"{r['load_avg_before']:.1f} before), nodes {r['nodes_total_s']:.2f} s "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["nodes_s"].items()), flush=True)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="GTZAN-layout folder (default: gtzan_mini, else synthetic)")
    ap.add_argument("--synthetic", type=int, default=0, help="write N synthetic 30 s tracks")
    ap.add_argument("--reruns", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_incremental_") as tmp:
        tmp = Path(tmp)
        if args.synthetic or not (args.root or SHARED_MINI.is_dir()):
            from music_genre.demo import write_demo_collection

            n = args.synthetic or 100
            write_demo_collection(tmp / "audio", n_per_genre=max(1, n // 10), broken_file=False)
            raw_root, source = tmp / "audio", f"{n} synthetic tracks"
        else:
            raw_root = Path(args.root) if args.root else SHARED_MINI
            source = str(raw_root)
        runs = measure(raw_root, args.reruns, tmp)
        cache_mb = sum(p.stat().st_size for p in (tmp / "data").rglob("*") if p.is_file()) / 2**20

    first, reruns = runs[0], runs[1:]
    rerun_wall = statistics.median(r["wall_s"] for r in reruns)
    rerun_nodes = statistics.median(r["nodes_total_s"] for r in reruns)
    emit({
        "benchmark": "incremental",
        "source": source,
        "first_run_s": first["wall_s"],
        "first_run_cpu_s": first["cpu_s"],
        "first_run_peak_rss_mb": first["peak_rss_mb"],
        "load_avg_before_first_run": first["load_avg_before"],
        "rerun_s": rerun_wall,
        "rerun_fraction": rerun_wall / first["wall_s"],
        "first_run_nodes_s": first["nodes_total_s"],
        "rerun_nodes_s": rerun_nodes,
        "rerun_nodes_fraction": rerun_nodes / first["nodes_total_s"],
        "target_fraction": 0.05,
        "first_run_per_node_s": first["nodes_s"],
        "rerun_per_node_s": reruns[-1]["nodes_s"],
        "kedro_fixed_cost_s": rerun_wall - rerun_nodes,
        "data_tree_mb_after_runs": cache_mb,
    })


if __name__ == "__main__":
    main()
