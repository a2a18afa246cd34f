"""Benchmark 1b: this checkout's ``audio.analyse`` against another checkout's, in ONE process.

    python benchmarks/extraction_ab.py --baseline DIR [--n-tracks 20] [--repeats 3] [--reference]

``DIR`` is another checkout (e.g. ``git archive <commit> | tar -x -C DIR``); its
``src/music_genre/audio.py`` is loaded as a second module. Both analyse the same decoded 30 s
tracks of ``../shared/data/gtzan_mini`` (57 + rich features + spectrogram, one BLAS thread),
interleaved track by track, so both see the same machine load: a change of the helpers is
measured to a few per cent even on a busy machine, where separate runs differ by ±20 %. Before
timing, every track's rich features and dB mel spectrogram are asserted bit-identical between the
two. ``--reference`` also times the reference (one librosa call per feature) for the ratio.
Figures: median CPU ms per track of each, and their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import SHARED_MINI, emit  # noqa: E402


def _load_other(checkout: Path):
    path = checkout / "src" / "music_genre" / "audio.py"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; --baseline must be a checkout with src/music_genre")
    spec = importlib.util.spec_from_file_location("baseline_audio", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_audio"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--n-tracks", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--segment-s", type=float, default=3.0)
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from music_genre import audio

    other = _load_other(args.baseline)
    paths = sorted(p for p in SHARED_MINI.rglob("*") if p.suffix in (".wav", ".au"))
    if not paths:
        raise SystemExit(f"no tracks under {SHARED_MINI}")
    paths = paths[:: max(1, len(paths) // args.n_tracks)][: args.n_tracks]
    params, other_params = audio.ExtractionParams(), other.ExtractionParams()
    signals = [audio._decode_fixed(p, params) for p in paths]
    ways = {
        "baseline": lambda y: other.analyse(y, other_params, rich_segment_s=args.segment_s),
        "project": lambda y: audio.analyse(y, params, rich_segment_s=args.segment_s),
    }
    if args.reference:
        ways["reference"] = lambda y: audio.reference_rich_features(y, params.sample_rate,
                                                                    args.segment_s)
    times: dict[str, list[float]] = {k: [] for k in ways}
    with threadpool_limits(1):
        for y in signals:  # warm-up (numba cache loads) and the equality check
            a, b = ways["baseline"](y), ways["project"](y)
            if not (np.array_equal(a.rich, b.rich) and np.array_equal(a.mel_db, b.mel_db)):
                raise SystemExit("the two checkouts' outputs differ: not a speed comparison")
        if args.reference:
            ways["reference"](signals[0])
        for _ in range(args.repeats):
            for y in signals:
                for name, fn in ways.items():
                    start = time.process_time()
                    fn(y)
                    times[name].append(time.process_time() - start)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(", ".join(f"{k} {v:.1f}" for k, v in ms.items()) + " CPU ms/track (median)")
    result = {"benchmark": "extraction_ab", "tracks": len(signals), "repeats": args.repeats,
              "baseline": str(args.baseline), "outputs_bit_identical": True,
              **{f"{k}_cpu_ms_per_track": v for k, v in ms.items()},
              "project_vs_baseline": ms["project"] / ms["baseline"]}
    if args.reference:
        result["reference_vs_project"] = ms["reference"] / ms["project"]
        result["reference_vs_baseline"] = ms["reference"] / ms["baseline"]
    emit(result)


if __name__ == "__main__":
    main()
