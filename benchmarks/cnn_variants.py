"""Benchmark: CNN variants — accuracy on grouped CV AND on other artists' excerpts, against
training CPU time, one command per variant (or several).

    python benchmarks/cnn_variants.py --variant "default:"      # the configured CNN
    python benchmarks/cnn_variants.py --excerpt-seeds 42,43 \
        --variant "old: filters=[32,64,128,256] dense_units=512 batch_size=8 mel_pool=1"
    python benchmarks/cnn_variants.py --variant "a: mixup.alpha=0.2" --variant "b: segment.crops_per_track=4"
        [--folds 5] [--only-folds N] [--no-cv] [--no-excerpts] [--excerpt-seeds S,...] [--out FILE]

A variant is ``NAME: key=value ...`` over the live ``params:cnn`` block of ``conf/`` (what
``kedro run`` trains; ``NAME:`` alone is the configuration as it stands); dotted keys reach nested
blocks (``segment.crops_per_track=4``, ``specaugment.p=0.8``), values are YAML. For each variant:

* **grouped CV**: one training per fold of ``evaluate_cv``'s grouped scheme on the spectrograms of
  a data tree that ``kedro run`` filled (``--data``; stratified group k-fold over 5-track id
  blocks per genre, the GTZAN artist proxy; validation = 15 % of the training folds, for early
  stopping only; the test fold is scored with the project's ``training.predict_proba``: the mean
  of its half-overlapping windows), pooled out-of-fold accuracy with its 95 % Wilson interval;
* **other-artist excerpts** (``--excerpts``, default ``../shared/data/gtzan_clips_other_artists``:
  381 clips of 2-3 s by artists the sample does not contain; evaluated only, never trained on):
  one training on every track of the sample (85 % train, a stratified 15 % for early stopping),
  then each clip through the service's own path, exactly as ``model_selection``'s
  ``evaluate_other_artists`` node does: the model is bundled (``bundle.trained_bundle``), loaded
  (``inference.loaded_model``) and each file's bytes go to ``inference.predict_bytes`` with a
  1 s minimum duration (the clip is looped to the 30 s analysis window); accuracy with its 95 %
  Wilson interval and recall per genre. ``--excerpt-seeds 42,43,44``: one such model per seed
  (the split and the training draws change with it): the spread between trainings, which the
  binomial interval does not hold.

Every training is the project's ``training.fit`` with the variant's parameters (early stopping
and ReduceLROnPlateau as configured, precision as configured: bfloat16 compute where the CPU has
it); its CPU seconds are this process's (``time.process_time``: TensorFlow's threads included)
around ``fit`` only, so the figures compare across machine load. The spectrograms are read from
the data tree's float16 store (computed once by data processing), so a variant pays for its
training and scoring only. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PROJECT_ROOT, emit  # noqa: E402
from cnn_cv import load_inputs  # noqa: E402


def conf_parameters() -> dict:
    """The live parameters (interpolations resolved), as ``kedro run`` sees them."""
    from kedro.config import OmegaConfigLoader

    return OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), base_env="base",
                             default_run_env="local")["parameters"]


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name: a=1 b.c=[1,2]"`` → ("name", {"a": 1, "b.c": [1, 2]})."""
    import yaml

    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise SystemExit(f"--variant {text!r}: write NAME: key=value ... (NAME: alone for the "
                         "configuration as it stands)")
    overrides = {}
    for item in rest.split():
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--variant {text!r}: {item!r} is not key=value")
        overrides[key] = yaml.safe_load(value)
    return name.strip(), overrides


def apply_overrides(params: dict, overrides: dict) -> dict:
    """A deep copy of ``params`` with each dotted key set; a key the block does not have is an
    error unless the builder reads it with a default (listed here)."""
    import copy

    optional = {"mel_pool", "jit_compile"}
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise SystemExit(f"override {key}: params:cnn has no block {p!r}")
            node = node[p]
        if parts[-1] not in node and key not in optional:
            raise SystemExit(f"override {key}: params:cnn has no key {parts[-1]!r} (known: "
                             f"{sorted(node)})")
        node[parts[-1]] = value
    return out


def excerpt_files(root: Path, genres: list[str]) -> list[tuple[Path, str]]:
    files = [(p, g) for g in genres for p in sorted((root / g).glob("*"))
             if p.is_file() and not p.name.startswith(".")] if root.is_dir() else []
    if not files:
        raise SystemExit(f"{root}: no audio under <genre>/ folders; pass --excerpts or "
                         "--no-excerpts")
    return files


def timed_fit(params, spec, train, y_train, val, y_val, n_classes, seed):
    from music_genre.models import training

    t0, c0 = time.perf_counter(), time.process_time()
    model, info = training.fit(params, training.select(spec, train), y_train,
                               training.select(spec, val), y_val, n_classes=n_classes, seed=seed)
    return model, info, time.perf_counter() - t0, time.process_time() - c0


def grouped_cv(params, spec, tracks, genres, seed, n_folds, only):
    import keras
    import numpy as np

    from music_genre import evaluation
    from music_genre.models import training

    cv = {"n_splits": n_folds, "n_repeats": 1, "seed": seed, "schemes": ["grouped"],
          "grouped": {"column": None, "block_size": 5}}
    folds = evaluation.make_folds(tracks, cv)
    index = {g: i for i, g in enumerate(genres)}
    genre_of = dict(zip(tracks["track_id"].astype(str), tracks["genre"].astype(str)))
    rows = []
    for k in range(only or n_folds):
        train, val, test = evaluation.fold_partition(folds, "grouped", 0, k, 0.15, seed)
        y = [np.array([index[genre_of[t]] for t in ids]) for ids in (train, val, test)]
        model, info, wall, cpu = timed_fit(params, spec, train, y[0], val, y[1], len(genres),
                                           seed + k)
        proba = training.predict_proba(model, training.select(spec, test), len(genres))
        correct = int((proba.argmax(1) == y[2]).sum())
        rows.append({"fold": k, "correct": correct, "n_test": len(test),
                     "epochs_run": info["epochs_run"], "wall_s": wall, "cpu_s": cpu})
        print(f"  fold {k}: {correct}/{len(test)}, {info['epochs_run']} epochs, {wall:.0f} s "
              f"wall, {cpu:.0f} CPU-s", flush=True)
        del model
        keras.backend.clear_session()
    k, n = sum(r["correct"] for r in rows), sum(r["n_test"] for r in rows)
    lo, hi = evaluation.wilson_interval(k, n)
    return {"accuracy": k / n, "ci95": [lo, hi], "correct": k, "n_tracks": n,
            "folds": [r["fold"] for r in rows],
            "fold_accuracy": [r["correct"] / r["n_test"] for r in rows],
            "epochs_run": [r["epochs_run"] for r in rows],
            "train_cpu_s": sum(r["cpu_s"] for r in rows),
            "train_wall_s": sum(r["wall_s"] for r in rows)}


def other_artists(params, spec, tracks, genres, seed, extraction, files):
    """Train on the whole sample, score every excerpt as ``evaluate_other_artists`` does."""
    import keras
    import numpy as np
    from sklearn.model_selection import train_test_split

    from music_genre import evaluation, inference
    from music_genre.models import bundle

    ids = tracks["track_id"].astype(str).to_numpy()
    labels = tracks["genre"].astype(str).to_numpy()
    train, val = train_test_split(ids, test_size=0.15, stratify=labels, random_state=seed)
    index = {g: i for i, g in enumerate(genres)}
    genre_of = dict(zip(ids, labels))
    y_train = np.array([index[genre_of[t]] for t in train])
    y_val = np.array([index[genre_of[t]] for t in val])
    model, info, wall, cpu = timed_fit(params, spec, train, y_train, val, y_val, len(genres), seed)
    loaded = inference.loaded_model(
        "cnn", bundle.trained_bundle(model, info, params, genres, extraction))
    policy = inference.InputPolicy(min_duration_s=1.0)  # evaluate_other_artists' default
    inference.pin_blas_threads()
    hits, per_genre, skipped = [], {g: [0, 0] for g in genres}, 0
    t0 = time.process_time()
    for path, genre in files:
        try:
            p = inference.predict_bytes(path.read_bytes(), loaded, str(path), policy)
        except (inference.InputError, ValueError) as exc:
            print(f"  skipped {path} ({exc})", flush=True)
            skipped += 1
            continue
        hits.append(p.genre == genre)
        per_genre[genre][0] += p.genre == genre
        per_genre[genre][1] += 1
    score_cpu = time.process_time() - t0
    k, n = int(sum(hits)), len(hits)
    lo, hi = evaluation.wilson_interval(k, n)
    print(f"  excerpts: {k}/{n}, trained {info['epochs_run']} epochs, {wall:.0f} s wall, "
          f"{cpu:.0f} CPU-s (scoring {score_cpu:.0f} CPU-s)", flush=True)
    del model, loaded
    keras.backend.clear_session()
    return {"accuracy": k / n, "ci95": [lo, hi], "correct": k, "n_files": n,
            "skipped": skipped,
            "recall": {g: c / t for g, (c, t) in per_genre.items() if t},
            "epochs_run": info["epochs_run"], "n_parameters": info.get("n_parameters"),
            "train_cpu_s": cpu, "train_wall_s": wall, "score_cpu_s": score_cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", action="append", default=[],
                    help='"NAME: key=value ..." over params:cnn (repeat for several)')
    ap.add_argument("--data", type=Path, default=PROJECT_ROOT / "data",
                    help="a data tree that kedro run filled (globals.data)")
    ap.add_argument("--excerpts", type=Path,
                    default=PROJECT_ROOT.parent / "shared" / "data" / "gtzan_clips_other_artists")
    ap.add_argument("--no-excerpts", action="store_true")
    ap.add_argument("--excerpts-per-genre", type=int, default=0,
                    help="score only the first N excerpts of each genre (0: all; a smoke test)")
    ap.add_argument("--no-cv", action="store_true")
    ap.add_argument("--excerpt-seeds", default="",
                    help="comma-separated training seeds for the whole-sample model (default: "
                         "the conf's seed); several give the spread between trainings")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, default=0, help="stop after N folds (0: all)")
    ap.add_argument("--out", type=Path, help="append each variant's result (JSON lines) here")
    args = ap.parse_args()

    conf = conf_parameters()
    genres, seed = list(conf["genres"]), int(conf["seed"])
    variants = [parse_variant(v) for v in (args.variant or ["conf:"])]
    spec, tracks = load_inputs(args.data)
    files = [] if args.no_excerpts else excerpt_files(args.excerpts, genres)
    if args.excerpts_per_genre:
        files = [f for g in genres for f in [f for f in files if f[1] == g][:args.excerpts_per_genre]]
    import os

    print(f"{len(tracks)} tracks, {len(files)} excerpts, load {os.getloadavg()[0]:.1f}",
          flush=True)
    results = {}
    for name, overrides in variants:
        params = {**apply_overrides(conf["cnn"], overrides), "verbose": 0}
        print(f"variant {name}: {overrides or 'as configured'}", flush=True)
        result: dict = {"overrides": overrides, "load_before": os.getloadavg()[0]}
        if not args.no_cv:
            result["grouped_cv"] = grouped_cv(params, spec, tracks, genres, seed, args.folds,
                                              args.only_folds)
            g = result["grouped_cv"]
            print(f"  grouped CV: {g['correct']}/{g['n_tracks']} = {g['accuracy']:.3f} "
                  f"[{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}], {g['train_cpu_s']:.0f} CPU-s, "
                  f"epochs {g['epochs_run']}", flush=True)
        seeds = [int(x) for x in args.excerpt_seeds.split(",") if x.strip()] or [seed]
        for i, s in enumerate(seeds if files else []):
            key = "excerpts" if i == 0 else f"excerpts_seed{s}"
            result[key] = other_artists(params, spec, tracks, genres, s, conf["extraction"],
                                        files)
            result[key]["seed"] = s
            e = result[key]
            print(f"  excerpts (seed {s}): {e['correct']}/{e['n_files']} = {e['accuracy']:.3f} "
                  f"[{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]", flush=True)
        result["load_after"] = os.getloadavg()[0]
        results[name] = result
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps({"variant": name, **result}) + "\n")
    emit({"benchmark": "cnn_variants", "scheme": "grouped", "folds": args.only_folds or args.folds,
          "results": results})


if __name__ == "__main__":
    main()
