"""Benchmark 3: CNN training throughput of the project's input pipeline vs plain arrays.

    python benchmarks/cnn_throughput.py [--n-samples 64] [--repeats 3] [--no-mixed] [--jit]

The CNN of ``conf/base/parameters_cnn.yml`` (same builder, same batch size) trained on a
synthetic float16 spectrogram store written with the project's ``SpectrogramDataset`` (the
memory-mapped file the cnn pipeline reads), in three ways, one epoch each, interleaved:

* ``project``: ``training.spectrogram_batches`` (float16 memmap → float32 batch by batch,
  shuffled) into the model with its SpecAugment layer (masks drawn on the fly, training only);
* ``plain``: ``model.fit`` on an in-memory float32 array of the same spectrograms, the same
  model without SpecAugment — the baseline;
* ``plain_specaugment``: the in-memory array into the model with SpecAugment (isolates what the
  augmentation costs from what the input pipeline costs);

and, where the CPU has bfloat16 instructions or a GPU is present, ``project`` again with the
Keras ``mixed_bfloat16`` policy (``mixed_float16`` on a GPU) set while the model is built (what
``accelerator.mixed_precision`` does). With ``--jit``, ``project`` again with XLA
(``cnn.jit_compile: true``). Segment training (the default CNN: 3 s windows) is
``--n-frames 129 --n-samples 480`` (60 training tracks × 8 crops per epoch). Samples per second = samples / epoch wall time, median
over the repeats, the first (tracing) epoch of each model left out; also per CPU-second (all
threads), which other users' load on a shared machine disturbs less. Target: project / plain ≥ 1.0.
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
import yaml  # noqa: E402
from _common import PROJECT_ROOT, emit  # noqa: E402


def cnn_params() -> dict:
    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_cnn.yml").read_text())["cnn"]
    conf.pop("accelerator", None)  # an interpolation; the policy is set explicitly below
    return conf


def cpu_has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text() or \
            "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-samples", type=int, default=64, help="training spectrograms")
    ap.add_argument("--repeats", type=int, default=3, help="measured epochs per way")
    ap.add_argument("--n-frames", type=int, default=1292, help="spectrogram width (30 s: 1292)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-precision run")
    ap.add_argument("--jit", action="store_true", help="also the project way with XLA")
    args = ap.parse_args()

    import keras

    from music_genre import distributed
    from music_genre.datasets import SpectrogramDataset, SpectrogramSet
    from music_genre.models import builders
    from music_genre.models.training import spectrogram_batches

    params = cnn_params()
    batch = int(params.get("batch_size", 16))
    n, n_mels, n_classes = args.n_samples, int(params.get("n_mels", 128)), 10
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, n)
    gpu = distributed.gpus()
    mixed = None if args.no_mixed else ("mixed_float16" if gpu else
                                        "mixed_bfloat16" if cpu_has_bf16() else None)

    with tempfile.TemporaryDirectory(prefix="bench_cnn_") as tmp:
        store = SpectrogramDataset(filepath=f"{tmp}/spectrograms", dtype="float16")
        data = rng.random((n, n_mels, args.n_frames), dtype=np.float32).astype(np.float16)
        store.save(SpectrogramSet(np.array([f"t{i}" for i in range(n)]), data))
        spec = store.load()  # memory-mapped
        in_memory = np.asarray(spec.data, dtype=np.float32)[..., None]
        idx = np.arange(n)
        shape = (n_mels, args.n_frames, 1)

        def build(specaugment: bool, policy: str = "float32", jit=None):
            p = {**params, "specaugment": {**params.get("specaugment", {}),
                                            "enabled": specaugment}, "jit_compile": jit}
            with distributed.precision_policy(policy):
                return builders.build_cnn(p, shape, n_classes, seed=0)

        ways = {
            "project": (build(True), lambda m: m.fit(
                spectrogram_batches(spec, idx, labels, batch, True, 0), epochs=1, verbose=0)),
            "plain": (build(False), lambda m: m.fit(
                in_memory, labels, batch_size=batch, shuffle=True, epochs=1, verbose=0)),
            "plain_specaugment": (build(True), lambda m: m.fit(
                in_memory, labels, batch_size=batch, shuffle=True, epochs=1, verbose=0)),
        }
        if mixed:
            ways["project_" + mixed] = (build(True, mixed), ways["project"][1])
        if args.jit:
            ways["project_jit"] = (build(True, jit=True), ways["project"][1])
        for name, (model, run) in ways.items():  # tracing / first-epoch warm-up, not timed
            run(model)
        times = {name: [] for name in ways}
        cpu = {name: [] for name in ways}
        for r in range(args.repeats):
            for name, (model, run) in ways.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run(model)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            print(f"repeat {r + 1}: " + ", ".join(
                f"{k} {n / v[-1]:.1f}" for k, v in times.items()) + " samples/s", flush=True)

    sps = {k: n / statistics.median(v) for k, v in times.items()}
    # samples per CPU-second (all TensorFlow threads): steadier than wall time when other users
    # load the machine, since it does not count the time the process waits for a core
    spc = {k: n / statistics.median(v) for k, v in cpu.items()}
    result = {
        "benchmark": "cnn_throughput",
        "device": ", ".join(gpu) or "CPU",
        "samples": n, "batch_size": batch, "input_shape": list(shape),
        "samples_per_s": sps,
        "ratio_project_vs_plain": sps["project"] / sps["plain"],
        "samples_per_cpu_s": spc,
        "ratio_project_vs_plain_cpu": spc["project"] / spc["plain"],
        "ratio_specaugment_cost": sps["plain_specaugment"] / sps["plain"],
        "target_ratio": 1.0,
        "tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__,
    }
    if mixed:
        result["mixed_precision"] = mixed
        result["mixed_precision_gain"] = sps["project_" + mixed] / sps["project"]
        result["mixed_precision_gain_cpu"] = spc["project_" + mixed] / spc["project"]
    else:
        result["mixed_precision"] = "not run (no bfloat16 CPU instructions, no GPU)"
    if args.jit:
        result["jit_gain"] = sps["project_jit"] / sps["project"]
        result["jit_gain_cpu"] = spc["project_jit"] / spc["project"]
    emit(result)


if __name__ == "__main__":
    main()
