"""Benchmark: the configured CNN's accuracy on grouped CV against its training time, for several
early-stopping patiences and precisions, in one run.

    python benchmarks/cnn_cv.py [--data data] [--patience 10,6,5,4,3]
                                [--precision float32,mixed_bfloat16] [--folds 5] [--only-folds N]

The CNN block of ``conf/base/parameters_cnn.yml`` as ``kedro run`` trains it (segment training,
100 epochs at most, early stopping with restored best weights, ReduceLROnPlateau), on the
spectrograms of a data tree that ``kedro run`` filled (``--data``: its ``globals.data``), on the
folds of ``evaluate_cv``'s grouped scheme (stratified group k-fold over 5-track id blocks per
genre, the GTZAN artist proxy; validation = 15 % of the training folds, for early stopping;
the test fold is never seen before scoring): GROUPED figures.

Several patiences from ONE training per fold: early stopping with patience p stops at the first
epoch where p epochs have passed without a better validation loss and restores the best weights
so far; everything before that is the same training (same seed, batches, learning-rate
schedule), so a run with patience p IS a prefix of the run with the largest patience. A callback
replicates Keras' ``EarlyStopping`` rule (``wait`` counter, ``epoch > 0``, ``start_from_epoch``)
and keeps, for every p, the best weights at the epoch where p would stop, with the wall and CPU
seconds spent until then; each snapshot is then scored on the test fold. ``--precision``: one
training per fold per Keras dtype policy (``mixed_bfloat16``: bfloat16 compute on CPUs with
AVX-512 BF16, float32 weights and softmax).

Figures per (precision, patience): pooled out-of-fold accuracy over the tracks with its 95 %
Wilson interval, per-fold accuracies, epochs run, training wall and CPU seconds (this process:
TensorFlow's threads included), and the time relative to (float32, the largest patience).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PROJECT_ROOT, emit  # noqa: E402


def cnn_params() -> tuple[dict, list[str], int]:
    """The live ``params:cnn`` block (interpolations resolved), the genres and the seed."""
    from kedro.config import OmegaConfigLoader

    params = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), base_env="base",
                               default_run_env="local")["parameters"]
    return params["cnn"], list(params["genres"]), int(params["seed"])


def latest(folder: Path) -> Path:
    versions = sorted(p for p in folder.iterdir() if p.is_dir())
    if not versions:
        raise FileNotFoundError(f"{folder}: no version; run `kedro run --pipeline "
                                "data_processing` (or the default run) into this data tree first")
    return versions[-1] / folder.name


def load_inputs(data: Path):
    import pandas as pd

    from music_genre.datasets import SpectrogramSet

    spec_dir = latest(data / "04_feature" / "spectrograms")
    import numpy as np

    ids = json.loads((spec_dir / "track_ids.json").read_text())
    spec = SpectrogramSet(np.asarray(ids, dtype=str), np.load(spec_dir / "data.npy", mmap_mode="r"))
    manifest = pd.read_csv(latest(data / "03_primary" / "manifest.csv"))
    tracks = manifest[manifest["status"] == "ok"][["track_id", "genre"]]
    return spec, tracks[tracks["track_id"].astype(str).isin(set(ids))]


def stop_recorder(patiences: list[int], start_from_epoch: int):
    """A Keras callback: for every patience p, the best weights and the epochs/seconds at the
    epoch where ``EarlyStopping(patience=p, restore_best_weights=True)`` would stop (the same
    rule as Keras 3.x: ``wait`` += 1, reset on a lower ``val_loss``, stop at ``wait >= p`` after
    epoch 0; epochs before ``start_from_epoch`` are not watched)."""
    import keras

    class StopRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_weights, self.best_epoch, self.wait = float("inf"), None, -1, 0
            self.snaps: dict[int, dict] = {}
            self.last_epoch = -1

        def on_train_begin(self, logs=None):
            self.t0 = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            self.last_epoch = epoch
            current = (logs or {}).get("val_loss")
            if current is None or epoch < start_from_epoch:
                return
            if self.best_weights is None:
                self.best_weights, self.best_epoch = self.model.get_weights(), epoch
            self.wait += 1
            if current < self.best:
                self.best, self.best_epoch, self.wait = current, epoch, 0
                self.best_weights = self.model.get_weights()
                return
            for p in patiences:
                if p not in self.snaps and self.wait >= p and epoch > 0:
                    self.snap(p, epoch)

        def snap(self, p, epoch):
            self.snaps[p] = {"weights": [w.copy() for w in self.best_weights],
                             "epochs_run": epoch + 1, "best_epoch": self.best_epoch + 1,
                             "wall_s": time.perf_counter() - self.t0[0],
                             "cpu_s": time.process_time() - self.t0[1]}

        def on_train_end(self, logs=None):  # the epoch budget ran out before p was reached
            for p in patiences:
                if p not in self.snaps and self.best_weights is not None:
                    self.snap(p, self.last_epoch)

    return StopRecorder()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=PROJECT_ROOT / "data",
                    help="a data tree that kedro run filled (globals.data)")
    ap.add_argument("--patience", default="10,6,5,4,3", help="comma-separated")
    ap.add_argument("--precision", default="float32,mixed_bfloat16", help="comma-separated")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, default=0, help="stop after N folds (0: all)")
    ap.add_argument("--epochs", type=int, help="epoch budget (default: the configured one)")
    ap.add_argument("--out", type=Path, help="also write the per-fold rows (JSON) here")
    args = ap.parse_args()

    import numpy as np

    from music_genre import evaluation
    from music_genre.models import training

    params, genres, seed = cnn_params()
    if args.epochs:
        params = {**params, "epochs": args.epochs}
    patiences = sorted({int(p) for p in args.patience.split(",")}, reverse=True)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    es = dict(params.get("early_stopping") or {})
    start_from = int(es.get("start_from_epoch", 0))
    spec, tracks = load_inputs(args.data)
    cv = {"n_splits": args.folds, "n_repeats": 1, "seed": seed, "schemes": ["grouped"],
          "grouped": {"column": None, "block_size": 5}}
    folds = evaluation.make_folds(tracks, cv)
    index = {g: i for i, g in enumerate(genres)}
    genre_of = dict(zip(tracks["track_id"].astype(str), tracks["genre"].astype(str)))
    n_folds = args.only_folds or args.folds
    rows = []
    print(f"CNN grouped CV: {len(tracks)} tracks, {n_folds} of {args.folds} folds, patiences "
          f"{patiences}, precisions {precisions}; configured patience "
          f"{es.get('patience')}, epochs {params.get('epochs')}", flush=True)
    parts = [evaluation.fold_partition(folds, "grouped", 0, k, 0.15, seed) for k in range(n_folds)]
    for precision in precisions:  # precision first: partial results are whole configurations
        for k, (train, val, test) in enumerate(parts):
            y = {n: np.array([index[genre_of[t]] for t in ids])
                 for n, ids in (("train", train), ("val", val), ("test", test))}
            run_params = {**params, "verbose": 0,
                          "accelerator": {**(params.get("accelerator") or {}),
                                          "mixed_precision": precision if precision != "float32"
                                          else "off"},
                          "early_stopping": {**es, "patience": max(patiences)}}
            recorder = stop_recorder(patiences, start_from)
            model, info = training.fit(run_params, training.select(spec, train), y["train"],
                                       training.select(spec, val), y["val"],
                                       n_classes=len(genres), seed=seed + k, callbacks=[recorder])
            for p in patiences:
                snap = recorder.snaps[p]
                model.set_weights(snap["weights"])
                proba = training.predict_proba(model, training.select(spec, test), len(genres))
                correct = int((proba.argmax(1) == y["test"]).sum())
                rows.append({"precision": precision, "patience": p, "fold": k,
                             "n_test": len(test), "correct": correct,
                             **{key: snap[key] for key in ("epochs_run", "best_epoch", "wall_s",
                                                           "cpu_s")}})
                print(f"fold {k} {precision} patience {p}: {correct}/{len(test)} "
                      f"epochs {snap['epochs_run']} (best {snap['best_epoch']}) "
                      f"{snap['wall_s']:.0f} s wall {snap['cpu_s']:.0f} CPU-s", flush=True)
            if args.out:  # after every fold: a long run's partial results survive
                args.out.write_text(json.dumps(rows, indent=1))
            import keras

            del model
            keras.backend.clear_session()
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))

    summary = {}
    ref = [r for r in rows if r["precision"] == precisions[0] and r["patience"] == patiences[0]]
    ref_cpu, ref_wall = sum(r["cpu_s"] for r in ref), sum(r["wall_s"] for r in ref)
    for precision in precisions:
        for p in patiences:
            part = [r for r in rows if r["precision"] == precision and r["patience"] == p]
            k, n = sum(r["correct"] for r in part), sum(r["n_test"] for r in part)
            lo, hi = evaluation.wilson_interval(k, n)
            cpu, wall = sum(r["cpu_s"] for r in part), sum(r["wall_s"] for r in part)
            summary[f"{precision}/patience{p}"] = {
                "accuracy": k / n, "ci95": [lo, hi], "correct": k, "n_tracks": n,
                "fold_accuracy": [r["correct"] / r["n_test"] for r in part],
                "epochs_run": [r["epochs_run"] for r in part],
                "train_wall_s": wall, "train_cpu_s": cpu,
                "cpu_fraction_of_reference": cpu / ref_cpu, "wall_fraction_of_reference": wall / ref_wall}
            print(f"{precision} patience {p}: {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}] grouped, "
                  f"train {wall:.0f} s wall / {cpu:.0f} CPU-s ({cpu / ref_cpu:.2f} of the "
                  "reference)", flush=True)
    emit({"benchmark": "cnn_cv", "scheme": "grouped", "folds": n_folds,
          "reference": f"{precisions[0]}/patience{patiences[0]}", "results": summary})


if __name__ == "__main__":
    main()
