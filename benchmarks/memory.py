"""Benchmark 4: peak memory of data processing and of CNN training on a 1000-track input.

    python benchmarks/memory.py [--n-tracks 1000] [--duration-s 30]

1. Writes ``--n-tracks`` distinct synthetic 30 s clips (a seeded tone + noise mix per track,
   GTZAN layout, 10 genre folders) to a temporary folder.
2. Data processing: ``kedro run --pipeline data_processing --to-nodes assemble_dataset`` on it
   (probe, extraction with joblib workers, cache, assembly of the feature table and the
   float16 spectrogram store) in a throw-away data tree (``--conf-source`` copy of ``conf/``);
   then the same command again over the unchanged audio (the incremental re-run at 1000 tracks).
3. CNN training on the resulting store, memory-mapped, through ``training.fit`` (the cnn
   pipeline's code: float16 memmap → float32 one batch at a time), one epoch over every track;
   the CNN is the configured one but narrowed (``--train-filters``) so that an epoch over 1000
   tracks fits in a few minutes of CPU — the input pipeline, which is what scales with the
   number of tracks, is unchanged. The same narrow CNN for 4 batches only is the control: what
   grows with the number of tracks is the difference. Then the configured CNN for
   ``--full-model-steps`` batches, to show its own working set.

Peak memory is sampled over the command and every process it starts (joblib workers included):
RSS summed, USS, and anonymous memory (heap: without the file pages of the memory-mapped store,
which the kernel can drop and re-read). Targets: data processing under 2 GB for 1000 tracks;
training well under "every spectrogram in float32" (n × 128 × 1292 × 4 bytes = 661 MB, i.e.
631 MiB, for 1000 tracks).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import PROJECT_ROOT, emit, run_with_peak_memory  # noqa: E402

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock"]


def write_tracks(root: Path, n: int, duration_s: float, sr: int = 22050) -> None:
    import soundfile as sf

    t = np.arange(int(sr * duration_s)) / sr
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        rng = np.random.default_rng(i)
        folder = root / "genres_original" / genre
        folder.mkdir(parents=True, exist_ok=True)
        f0 = rng.uniform(80, 800)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
        y += rng.normal(0, 0.05, t.size)
        sf.write(folder / f"{genre}.{i // len(GENRES):05d}.wav", y.astype(np.float32), sr,
                 subtype="PCM_16")


def train_child(store: str, filters: list[int], epochs: int, steps: int | None) -> None:
    """Child process: train the CNN on the memory-mapped store (as the cnn pipeline does)."""
    import yaml

    from music_genre.datasets import SpectrogramDataset
    from music_genre.models import training

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_cnn.yml").read_text())["cnn"]
    params.pop("accelerator", None)
    params.update(epochs=epochs, verbose=0, early_stopping={"enabled": False},
                  reduce_lr={"enabled": False})
    if filters:
        params.update(filters=filters, dense_units=64)
    from kedro.io.core import Version

    spec = SpectrogramDataset(filepath=store, version=Version(None, None)).load()  # latest
    n = len(spec)
    labels = np.arange(n) % 10
    idx = np.arange(n)
    val = idx[: max(1, n // 10)]
    train = idx if steps is None else idx[: steps * int(params.get("batch_size", 16))]
    model, info = training.fit(params, (spec, train), labels[train], (spec, val), labels[val],
                               10, seed=0)
    print(json.dumps({"trained_samples": int(len(train)), "epochs": info.get("epochs_run"),
                      "is_memmap": isinstance(spec.data, np.memmap)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tracks", type=int, default=1000)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--train-filters", default="8,16,32,64",
                    help="narrowed CNN for the full-epoch run ('' = the configured CNN)")
    ap.add_argument("--full-model-steps", type=int, default=4)
    ap.add_argument("--child-train", help=argparse.SUPPRESS)
    ap.add_argument("--child-filters", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_train:
        filters = [int(f) for f in args.child_filters.split(",") if f]
        train_child(args.child_train, filters, 1, args.child_steps or None)
        return

    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        write_tracks(tmp / "audio", args.n_tracks, args.duration_s)
        print(f"{args.n_tracks} synthetic {args.duration_s:g} s tracks written", flush=True)
        conf = tmp / "conf"
        shutil.copytree(PROJECT_ROOT / "conf", conf)
        g = conf / "base" / "globals.yml"
        g.write_text(re.sub(r"(?m)^data:.*$", f"data: {tmp / 'data'}", g.read_text()))
        kedro = shutil.which("kedro") or "kedro"
        command = [kedro, "run", "--pipeline", "data_processing", "--to-nodes",
                   "assemble_dataset", "--conf-source", str(conf),
                   "--params", f"raw_root={tmp / 'audio'}"]
        dp = run_with_peak_memory(command, cwd=PROJECT_ROOT)
        if dp["returncode"]:
            raise RuntimeError(f"data processing failed:\n{dp['output'][-3000:]}")
        # the same command again over the unchanged audio: the incremental re-run at this size
        # (benchmarks/incremental.py times it per node on the real sample)
        rerun = run_with_peak_memory(command, cwd=PROJECT_ROOT)
        if rerun["returncode"]:
            raise RuntimeError(f"data processing re-run failed:\n{rerun['output'][-3000:]}")
        print(f"data processing: {dp['wall_s']:.0f} s, peak RSS {dp['peak_rss_mb']:.0f} MB "
              f"(largest process {dp['peak_rss_largest_process_mb']:.0f} MB), "
              f"peak USS {dp['peak_uss_mb']:.0f} MB, anonymous {dp['peak_anonymous_mb']:.0f} MB",
              flush=True)
        print(f"re-run over unchanged audio: {rerun['wall_s']:.0f} s "
              f"({100 * rerun['wall_s'] / dp['wall_s']:.1f} % of the first run), peak RSS "
              f"{rerun['peak_rss_mb']:.0f} MB", flush=True)
        versions = sorted((tmp / "data" / "04_feature" / "spectrograms").glob("*/spectrograms"))
        store = versions[-1]
        shape = np.load(store / "data.npy", mmap_mode="r").shape
        float32_mb = float(np.prod(shape)) * 4 / 2**20

        train_runs = {}
        # the narrow CNN over every track, then over 4 batches only: what grows with the number
        # of tracks is the difference; then the configured CNN's own working set
        for name, filters, steps in [("full_epoch_narrow_cnn", args.train_filters, 0),
                                     ("narrow_cnn_4_batches", args.train_filters, 4),
                                     ("configured_cnn_4_batches", "", args.full_model_steps)]:
            r = run_with_peak_memory(
                [sys.executable, __file__, "--child-train", str(store.parent.parent),
                 "--child-filters", filters, "--child-steps", str(steps)], cwd=PROJECT_ROOT)
            if r["returncode"]:
                raise RuntimeError(f"training failed:\n{r['output'][-3000:]}")
            info = json.loads(r["output"].strip().splitlines()[-1])
            train_runs[name] = {k: r[k] for k in ("wall_s", "peak_rss_mb", "peak_uss_mb",
                                                  "peak_anonymous_mb")}
            train_runs[name].update(info, filters=filters or "configured")
            print(f"training ({name}, {info['trained_samples']} samples): {r['wall_s']:.0f} s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, USS {r['peak_uss_mb']:.0f} MB, "
                  f"anonymous {r['peak_anonymous_mb']:.0f} MB "
                  f"(all spectrograms in float32: {float32_mb:.0f} MB)", flush=True)

    emit({
        "benchmark": "memory",
        "tracks": args.n_tracks,
        "data_processing": {k: dp[k] for k in ("wall_s", "peak_rss_mb", "peak_uss_mb",
                                                "peak_rss_largest_process_mb",
                                                "peak_anonymous_mb")},
        "data_processing_target_mb": 2048,
        "data_processing_rerun": {"wall_s": rerun["wall_s"],
                                  "fraction_of_first": rerun["wall_s"] / dp["wall_s"],
                                  "peak_rss_mb": rerun["peak_rss_mb"]},
        "spectrogram_store_shape": list(shape),
        "all_spectrograms_float32_mb": float32_mb,
        "training": train_runs,
    })


if __name__ == "__main__":
    main()
