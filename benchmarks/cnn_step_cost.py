"""Benchmark: training CPU cost per 3 s sample of CNN architectures / precisions / XLA, one
epoch of the project's input pipeline on synthetic float16 windows (no accuracy: see
cnn_variants.py for that).

    python benchmarks/cnn_step_cost.py [--n-samples 256] [--repeats 2]
        [--way "name: key=value ..." ...]   # over params:cnn, like cnn_variants.py; plus
                                            # precision=float32|mixed_bfloat16

Samples per CPU-second (this process, all threads), median over the repeats after one tracing
epoch per way; ways interleaved. The last line is JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import emit  # noqa: E402
from cnn_variants import apply_overrides, conf_parameters, parse_variant  # noqa: E402

DEFAULT_WAYS = [
    "conf_bf16: precision=mixed_bfloat16",
    "conf_f32: precision=float32",
    "narrow_bf16: filters=[16,32,64,128] dense_units=128 batch_size=16 precision=mixed_bfloat16",
    "narrow_f32: filters=[16,32,64,128] dense_units=128 batch_size=16 precision=float32",
    "narrow_mel2_bf16: filters=[16,32,64,128] dense_units=128 batch_size=16 mel_pool=2 precision=mixed_bfloat16",
    "narrow_mel2_f32: filters=[16,32,64,128] dense_units=128 batch_size=16 mel_pool=2 precision=float32",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--way", action="append", default=[])
    args = ap.parse_args()

    from music_genre import distributed
    from music_genre.datasets import SpectrogramDataset, SpectrogramSet
    from music_genre.models import builders
    from music_genre.models.training import spectrogram_batches

    conf = conf_parameters()["cnn"]
    n, n_mels, frames = args.n_samples, 128, int(conf["segment"]["frames"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    ways = {}
    with tempfile.TemporaryDirectory(prefix="bench_cnn_") as tmp:
        store = SpectrogramDataset(filepath=f"{tmp}/spectrograms", dtype="float16")
        store.save(SpectrogramSet(np.array([f"t{i}" for i in range(n)]),
                   rng.random((n, n_mels, frames), dtype=np.float32).astype(np.float16)))
        spec = store.load()
        for text in args.way or DEFAULT_WAYS:
            name, over = parse_variant(text)
            precision = over.pop("precision", "float32")
            p = apply_overrides(conf, over)
            with distributed.precision_policy(precision):
                model = builders.build_cnn(p, (n_mels, frames, 1), 10, seed=0)
            data = spectrogram_batches(spec, np.arange(n), labels, int(p["batch_size"]), True, 0)
            ways[name] = (model, data, int(model.count_params()))
            model.fit(data, epochs=1, verbose=0)  # tracing
        cpu = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, (model, data, _) in ways.items():
                c0 = time.process_time()
                model.fit(data, epochs=1, verbose=0)
                cpu[name].append(time.process_time() - c0)
    spc = {k: n / statistics.median(v) for k, v in cpu.items()}
    first = next(iter(spc))
    for k, v in spc.items():
        print(f"{k}: {v:.1f} samples/CPU-s ({v / spc[first]:.2f}x {first}), "
              f"{ways[k][2]} parameters", flush=True)
    emit({"benchmark": "cnn_step_cost", "samples": n, "frames": frames,
          "samples_per_cpu_s": spc, "relative": {k: v / spc[first] for k, v in spc.items()}})


if __name__ == "__main__":
    main()
