"""Benchmark 1: feature + spectrogram extraction, the project's way vs the reference way.

    python benchmarks/extraction.py [--root DIR] [--n-tracks N] [--repeats 3]

Tracks: the 100 real GTZAN tracks in ``../shared/data/gtzan_mini`` when present, else a
synthetic demo collection (``music_genre.demo``) written to a temporary folder.

* reference: one process; for each file ``librosa.load`` then every librosa feature function
  called separately on the waveform, each recomputing its own STFT, for the same outputs as
  the project makes (``music_genre.audio.reference_rich_features``: the 57 features, the rich
  features and the dB mel spectrogram; ``--reference-57`` keeps the reference project's own
  set, ``reference_features``: the 57 and the spectrogram);
* project: the data-processing node ``extract_tracks`` (cache keys, one pass per track: one
  decode, one shared STFT, the fast exact feature helpers, joblib workers on every core) plus
  writing its cache entries chunk by chunk (``TrackCacheDataset.save``). It makes MORE than the
  reference: the rich features too (same STFT); degraded copies are left out here
  (``augmentation.degradations: []``) so that both ways analyse each signal once.

Each way runs as its own fresh Python process per repeat (repeats interleaved, so both see the
same machine load), timed from the outside: ``cold`` = the whole command, interpreter, imports,
librosa's numba cache load and joblib worker start-up included. Inside each process the
steady-state part is timed too: ``warm`` = the reference loop after one warm-up call / the
node after its worker pool is started and warmed (what dominates at 1000 tracks).
Also measured, in this process on a subset: CPU ms per track of each way on one core, the
floor (decode + one STFT + one mel projection + dB per track) and a per-stage profile of the
project's one pass (``--profile-tracks``). The feature agreement with the
reference (same fixed-length signal) is printed as the max relative difference per feature.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from _common import PROJECT_ROOT, SHARED_MINI, emit  # noqa: E402


def _conf_params() -> tuple[dict, dict, dict]:
    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_data_processing.yml").read_text())
    execution = dict(conf["execution"], progress=False)
    return dict(conf["extraction"]), execution, dict(conf.get("rich_features") or {})


def _collection(root: str | None, n_tracks: int | None, tmp: Path) -> tuple[Path, str]:
    if root:
        return Path(root), "given"
    if SHARED_MINI.is_dir():
        return SHARED_MINI, "gtzan_mini (real GTZAN)"
    from music_genre.demo import write_demo_collection

    per_genre = max(1, -(-(n_tracks or 100) // 10))
    write_demo_collection(tmp / "demo", n_per_genre=per_genre, broken_file=False)
    return tmp / "demo", "synthetic demo audio"


def _cpu_now() -> float:
    """CPU seconds of this process and its live children (the joblib workers)."""
    import psutil

    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _warm_up() -> None:
    """First use of librosa in a process: lazy submodule imports and numba cache loads."""
    from music_genre import audio

    audio.analyse(np.random.default_rng(0).standard_normal(22050 * 5).astype(np.float32),
                  audio.ExtractionParams(duration_s=5.0))


def child_reference(paths: list[str], n_samples: int, out: Path, segment_s: float,
                    only_57: bool) -> dict:
    import librosa

    from music_genre.audio import fix_length, reference_features, reference_rich_features

    start = time.perf_counter()
    _warm_up()
    warm_up = time.perf_counter() - start
    start, cpu = time.perf_counter(), _cpu_now()
    feats, mels = [], []
    for p in paths:
        y, _ = librosa.load(p, sr=22050)
        y = fix_length(y, n_samples)
        f, mel = reference_features(y) if only_57 else reference_rich_features(y, 22050, segment_s)
        feats.append(f)
        mels.append(mel.astype(np.float32))
    loop, cpu = time.perf_counter() - start, _cpu_now() - cpu
    np.savez(out, features=np.array(feats), mel=np.array(mels))
    return {"warm_up_s": warm_up, "warm_s": loop, "warm_cpu_s": cpu}


def child_project(probed, extraction: dict, execution: dict, rich: dict, cache_dir: Path,
                  out: Path) -> dict:
    from joblib import Parallel, delayed

    from music_genre.datasets import TrackCacheDataset
    from music_genre.pipelines.data_processing.nodes import extract_tracks

    # start and warm the worker pool the node will reuse (loky's reusable executor), so the
    # node's own time is the steady state; the start-up is still inside the cold figure
    start = time.perf_counter()
    n_jobs = int(execution.get("n_jobs", -1))
    Parallel(n_jobs=n_jobs)(delayed(_warm_up)() for _ in range(max(n_jobs, os.cpu_count() or 1)))
    warm_up = time.perf_counter() - start
    start, cpu = time.perf_counter(), _cpu_now()
    cache = TrackCacheDataset(path=str(cache_dir))
    for chunk, keys in extract_tracks(probed, cache.load(), extraction, rich,
                                      {"degradations": []}, execution):
        cache.save(chunk)  # as Kedro saves a generator node's chunks
    node, cpu = time.perf_counter() - start, _cpu_now() - cpu
    order = [cache.load()[k] for k in keys["cache_key"]]
    np.savez(out, features=np.array([e["features"] for e in order]),
             rich=np.array([e["rich"] for e in order]), mel=np.array([e["mel"] for e in order]))
    return {"warm_up_s": warm_up, "warm_s": node, "warm_cpu_s": cpu}


def run_child(kind: str, listing: Path, tmp: Path, repeat: int, only_57: bool) -> dict:
    out = tmp / f"{kind}{repeat}.npz"
    cmd = [sys.executable, __file__, "--child", kind, "--listing", str(listing), "--out", str(out),
           "--cache", str(tmp / f"cache{repeat}")] + (["--reference-57"] if only_57 else [])
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ)
    if kind == "reference":  # one process on one core: no BLAS helper threads spinning
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    cold = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the child and every worker it reaped: the whole command's CPU seconds
    cold_cpu = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    if proc.returncode:
        raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as npz:
        result.update(cold_s=cold, cold_cpu_s=cold_cpu, features=npz["features"], mel=npz["mel"],
                      rich=npz["rich"] if "rich" in npz.files else None)
    return result


def per_core_costs(paths: list[str], params, segment_s: float) -> dict:
    """CPU ms per track on one core: the project's pass (57 + spectrogram; + rich features;
    + an 8 kHz copy), the reference, and the floor."""
    import librosa
    from threadpoolctl import threadpool_limits

    from music_genre import audio

    def cpu_ms(fn) -> float:
        times = []
        for p in paths:
            start = time.process_time()
            fn(p)
            times.append(time.process_time() - start)
        return 1000 * statistics.median(times)

    def floor(p):
        y = audio.fix_length(audio.load_audio(p), params.n_samples)
        power = np.abs(librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length)) ** 2
        librosa.power_to_db(audio._mel_power(power, params))

    def project(p):
        r = audio.analyse_file(p, params)
        audio.normalise_spectrogram(r.mel_db).astype(np.float16)

    def reference(p):
        y, _ = librosa.load(p, sr=params.sample_rate)
        audio.reference_features(audio.fix_length(y, params.n_samples))

    def reference_rich(p):
        y, _ = librosa.load(p, sr=params.sample_rate)
        audio.reference_rich_features(audio.fix_length(y, params.n_samples), params.sample_rate,
                                      segment_s)

    with threadpool_limits(1):  # one core each, as in a joblib worker
        project(paths[0]), reference(paths[0])  # warm-up (numba, filter caches)
        audio.track_entry(paths[0], params, segment_s, ("resample_8k",))
        return {"floor": cpu_ms(floor), "project": cpu_ms(project),
                "project_with_rich": cpu_ms(lambda p: audio.track_entry(p, params, segment_s)),
                "project_with_rich_and_8k_copy": cpu_ms(
                    lambda p: audio.track_entry(p, params, segment_s, ("resample_8k",))),
                "reference": cpu_ms(reference), "reference_with_rich": cpu_ms(reference_rich)}


def stage_profile(paths: list[str], params, segment_s: float) -> dict:
    """Median CPU ms per track of each stage of the project's one pass, on one core."""
    import librosa
    from threadpoolctl import threadpool_limits

    from music_genre import audio

    times: dict[str, list[float]] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.process_time()
        out = fn(*args, **kwargs)
        times.setdefault(name, []).append(time.process_time() - start)
        return out

    sr, hop, n_fft = params.sample_rate, params.hop_length, params.n_fft
    freqs = audio._fft_frequencies(sr, n_fft)
    with threadpool_limits(1):
        audio.warm_up(params)
        for p in paths:
            # the steps of audio.analyse / track_entry, in its order, with its helpers
            y = timed("decode", audio._decode_fixed, p, params)
            magnitude = timed("stft_magnitude", audio._stft_magnitude, y, n_fft, hop)
            power = timed("power", lambda: magnitude**2)
            mel_db = timed("mel_db", lambda: librosa.power_to_db(audio._mel_power(power, params)))
            mfcc = timed("mfcc", librosa.feature.mfcc, S=mel_db, n_mfcc=params.n_mfcc)
            centroid, bandwidth, rolloff = timed(
                "centroid_bandwidth_rolloff", audio._spectral_shape, magnitude, freqs,
                params.rolloff_percent)
            zcr = timed("zcr", audio._zero_crossing_rate, y, n_fft, hop)
            onset = timed("onset", librosa.onset.onset_strength, S=mel_db, sr=sr, hop_length=hop)
            tempo = timed("tempo", audio._tempo, onset, sr, hop)
            tuning = timed("tuning", audio._estimate_tuning, power, sr, n_fft, params.n_chroma)
            chroma = timed("chroma", audio._chroma_stft, power, sr, params.n_chroma, tuning)
            timed("normalise_float16",
                  lambda: audio.normalise_spectrogram(mel_db).astype(np.float16))
            timed("mfcc_delta", librosa.feature.delta, mfcc)
            timed("spectral_contrast", audio._spectral_contrast, magnitude, sr, n_fft)
            timed("flatness", audio._spectral_flatness, power)
            timed("tonnetz", librosa.feature.tonnetz, chroma=chroma, sr=sr)
            timed("rms", audio._rms_consuming_power, power, n_fft)
            fr = audio._Frames(mfcc, centroid, bandwidth, rolloff, zcr, tempo, chroma)
            spec = audio._Spectra(y, magnitude, magnitude**2, mel_db)
            timed("rich_extras_all", audio._rich_extras, spec, fr, params, segment_s)
            low = timed("degrade_8k", audio.degrade, y, sr, "resample_8k")
            timed("analyse_8k_copy_rich", audio.analyse, low, params, rich_segment_s=segment_s)
    return {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="GTZAN-layout folder (default: gtzan_mini, else demo audio)")
    ap.add_argument("--n-tracks", type=int, default=None, help="use the first N tracks")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--per-core-tracks", type=int, default=20)
    ap.add_argument("--profile-tracks", type=int, default=10)
    ap.add_argument("--reference-57", action="store_true",
                    help="reference computes only the 57 + spectrogram (the project still "
                         "makes the rich features too)")
    ap.add_argument("--child", choices=["reference", "project"], help=argparse.SUPPRESS)
    ap.add_argument("--listing", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()

    extraction, execution, rich = _conf_params()
    segment_s = float(rich.get("segment_s", 3.0) or 0.0)
    if args.child:
        import pandas as pd

        probed = pd.read_csv(args.listing)
        if args.child == "reference":
            from music_genre.audio import ExtractionParams

            n_samples = ExtractionParams.from_dict(extraction).n_samples
            res = child_reference(probed["path"].tolist(), n_samples, Path(args.out), segment_s,
                                  args.reference_57)
        else:
            res = child_project(probed, extraction, execution, rich, Path(args.cache),
                                Path(args.out))
        print(json.dumps(res))
        return

    from music_genre import audio
    from music_genre.datasets import AudioFolderDataset
    from music_genre.pipelines.data_processing.nodes import probe_tracks

    params = audio.ExtractionParams.from_dict(extraction)
    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as tmp:
        tmp = Path(tmp)
        root, source = _collection(args.root, args.n_tracks, tmp)
        listing = AudioFolderDataset(path=str(root)).load()
        probed = probe_tracks(listing, sorted(listing["genre"].unique()))
        probed = probed[probed["status"] == "ok"].reset_index(drop=True)
        if args.n_tracks:
            probed = probed.iloc[: args.n_tracks].reset_index(drop=True)
        probed.to_csv(tmp / "listing.csv", index=False)
        paths = probed["path"].astype(str).tolist()
        n = len(paths)
        print(f"{n} tracks from {root} ({source}); {args.repeats} interleaved repeats", flush=True)

        runs = {"reference": [], "project": []}
        for r in range(args.repeats):
            for kind in runs:
                runs[kind].append(run_child(kind, tmp / "listing.csv", tmp, r, args.reference_57))
            print(f"repeat {r + 1}: " + ", ".join(
                f"{k} cold {1000 * v[-1]['cold_s'] / n:.1f} / warm {1000 * v[-1]['warm_s'] / n:.1f}"
                f" ms/track (CPU {1000 * v[-1]['cold_cpu_s'] / n:.1f} / "
                f"{1000 * v[-1]['warm_cpu_s'] / n:.1f})" for k, v in runs.items()), flush=True)

        # agreement on the same fixed-length signals
        ours, ref = runs["project"][-1]["features"], runs["reference"][-1]["features"][:, :57]
        rel = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-9)
        worst = int(np.argmax(rel.max(axis=0)))
        tempo_equal = bool(np.all(ours[:, 44] == ref[:, 44]))
        mel_diff = max(
            float(np.abs(m.astype(np.float32) - audio.normalise_spectrogram(rm)).max())
            for m, rm in zip(runs["project"][-1]["mel"], runs["reference"][-1]["mel"]))
        print(f"features: max relative difference {rel.max():.2e} "
              f"({audio.FEATURE_NAMES[worst]}), tempo equal on every track: {tempo_equal}; "
              f"normalised spectrogram max |diff| {mel_diff:.1e} (float16 storage)", flush=True)
        rich_rel = None
        if not args.reference_57:
            ours_r, ref_r = runs["project"][-1]["rich"], runs["reference"][-1]["features"]
            rich_rel = np.abs(ours_r - ref_r) / np.maximum(np.abs(ref_r), 1e-9)
            names = audio.rich_feature_names(params, segment_s)
            print(f"rich features: max relative difference {rich_rel.max():.2e} "
                  f"({names[int(np.argmax(rich_rel.max(axis=0)))]})", flush=True)

        per_core = per_core_costs(paths[: args.per_core_tracks], params, segment_s)
        print(f"one core, CPU ms/track: project {per_core['project']:.1f} (57 + spectrogram), "
              f"{per_core['project_with_rich']:.1f} (+ rich), "
              f"{per_core['project_with_rich_and_8k_copy']:.1f} (+ rich + 8 kHz copy); reference "
              f"{per_core['reference']:.1f} (57 + spectrogram), "
              f"{per_core['reference_with_rich']:.1f} (+ rich); floor (decode+STFT+mel+dB) {per_core['floor']:.1f}",
              flush=True)
        stages = stage_profile(paths[: args.profile_tracks], params, segment_s)
        print("one core, CPU ms/track per stage: "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()), flush=True)

    def ms(kind: str, key: str) -> float:
        return 1000 * statistics.median(r[key] for r in runs[kind]) / n

    result = {"benchmark": "extraction", "tracks": n, "source": source, "repeats": args.repeats,
              "outputs_compared": ("57 + spectrogram (the project makes rich features too)"
                                   if args.reference_57 else "57 + rich features + spectrogram")}
    for key in ("cold", "warm", "cold_cpu", "warm_cpu"):
        result[f"reference_{key}_ms_per_track"] = ms("reference", f"{key}_s")
        result[f"project_{key}_ms_per_track"] = ms("project", f"{key}_s")
        result[f"ratio_{key}"] = ms("reference", f"{key}_s") / ms("project", f"{key}_s")
    result.update({
        "target_ratio": 8.0,
        "note": "wall ratios need two idle cores; *_cpu_* are CPU seconds summed over all "
                "processes (robust to other users' load, = a one-core comparison)",
        "reference_start_up_s": statistics.median(r["cold_s"] - r["warm_s"]
                                                  for r in runs["reference"]),
        "project_start_up_s": statistics.median(r["cold_s"] - r["warm_s"]
                                                for r in runs["project"]),
        "project_n_jobs": execution.get("n_jobs"),
        "per_core_cpu_ms_per_track": per_core,
        "per_core_ratio": per_core["reference"] / per_core["project"],
        "per_core_ratio_with_rich": (per_core["reference_with_rich"]
                                     / per_core["project_with_rich"]),
        "per_core_stage_ms": stages,
        "project_vs_floor": per_core["project"] / per_core["floor"],
        "max_rel_diff_features": float(rel.max()),
        "max_rel_diff_rich_features": None if rich_rel is None else float(rich_rel.max()),
        "tempo_equal": tempo_equal,
        "max_abs_diff_normalised_mel": mel_diff,
    })
    emit(result)


if __name__ == "__main__":
    main()
