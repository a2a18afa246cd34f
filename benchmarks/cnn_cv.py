"""Benchmark: the configured CNN's accuracy on grouped CV against its training time, for several
early-stopping rules and precisions, in one run.

    python benchmarks/cnn_cv.py [--data data] [--rules 10@0,5@0,4@6,...]
                                [--precision float32,mixed_bfloat16] [--folds 5] [--only-folds N]

The CNN block of ``conf/base/parameters_cnn.yml`` as ``kedro run`` trains it (segment training,
100 epochs at most, early stopping with restored best weights, ReduceLROnPlateau), on the
spectrograms of a data tree that ``kedro run`` filled (``--data``: its ``globals.data``), on the
folds of ``evaluate_cv``'s grouped scheme (stratified group k-fold over 5-track id blocks per
genre, the GTZAN artist proxy; validation = 15 % of the training folds, for early stopping;
the test fold is never seen before scoring): GROUPED figures.

Several early-stopping rules (patience p, ``start_from_epoch`` s) from ONE training per fold:
early stopping only decides when to stop and which epoch's weights to restore; everything
before that is the same training (same seed, batches, learning-rate schedule), so the run of
any rule IS a prefix of one long run. A callback replays Keras' ``EarlyStopping`` for every rule
at once (``wait`` counter, ``epoch > 0``, epochs before s not watched), keeps each rule's best
weights at the epoch where it stops, with the wall and CPU seconds spent until then, and stops
the training when every rule has stopped; each snapshot is then scored on the test fold.
``--precision``: one training per fold per Keras dtype policy (``mixed_bfloat16``: bfloat16
compute on CPUs with AVX-512 BF16, float32 weights and softmax).

Figures per (precision, rule): pooled out-of-fold accuracy over the tracks with its 95 % Wilson
interval, per-fold accuracies, epochs run, training wall and CPU seconds (this process:
TensorFlow's threads included), and the time relative to the first precision and rule.
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


def parse_rules(text: str) -> list[tuple[int, int]]:
    """``"10@0,5@0,4@6"`` → [(patience, start_from_epoch), ...] (``"5"`` = ``"5@0"``)."""
    rules = []
    for part in text.split(","):
        p, _, s = part.strip().partition("@")
        rules.append((int(p), int(s or 0)))
    return list(dict.fromkeys(rules))


def stop_recorder(rules: list[tuple[int, int]]):
    """A Keras callback replaying ``EarlyStopping(patience=p, start_from_epoch=s,
    restore_best_weights=True)`` on ``val_loss`` for every rule (p, s) of ``rules`` at once, with
    Keras 3's rule: epochs before ``s`` are not watched; then ``wait`` += 1 each epoch, reset to 0
    by a lower validation loss (whose weights become the best); stop at ``wait >= p`` after
    epoch 0. For each rule it keeps the best weights, the epochs run and the wall/CPU seconds at
    the epoch where that rule stops; training stops once every rule has stopped."""
    import keras

    class StopRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.state = {r: {"best": float("inf"), "weights": None, "best_epoch": -1, "wait": 0}
                          for r in rules}
            self.snaps: dict[tuple[int, int], dict] = {}
            self.last_epoch = -1

        def on_train_begin(self, logs=None):
            self.t0 = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            self.last_epoch = epoch
            current = (logs or {}).get("val_loss")
            weights = None  # fetched once per epoch, only if a rule needs them
            for rule, st in self.state.items():
                p, start = rule
                if rule in self.snaps or current is None or epoch < start:
                    continue
                if st["weights"] is None or current < st["best"]:
                    weights = weights or self.model.get_weights()
                    if current < st["best"]:
                        st["best"], st["wait"] = current, -1  # -1 + 1 below = 0
                    st["weights"], st["best_epoch"] = weights, epoch
                st["wait"] += 1
                if st["wait"] >= p and epoch > 0:
                    self.snap(rule, epoch)
            if len(self.snaps) == len(self.state):
                self.model.stop_training = True

        def snap(self, rule, epoch):
            st = self.state[rule]
            self.snaps[rule] = {"weights": st["weights"], "epochs_run": epoch + 1,
                                "best_epoch": st["best_epoch"] + 1,
                                "wall_s": time.perf_counter() - self.t0[0],
                                "cpu_s": time.process_time() - self.t0[1]}

        def on_train_end(self, logs=None):  # the epoch budget ran out first
            for rule, st in self.state.items():
                if rule not in self.snaps and st["weights"] is not None:
                    self.snap(rule, self.last_epoch)

    return StopRecorder()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=PROJECT_ROOT / "data",
                    help="a data tree that kedro run filled (globals.data)")
    ap.add_argument("--rules", default="10@0,8@0,6@0,5@0,4@0,3@0,5@6,4@6,3@6",
                    help="early-stopping rules patience@start_from_epoch, comma-separated; the "
                         "first is the reference")
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
    rules = parse_rules(args.rules)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    es = dict(params.get("early_stopping") or {})
    spec, tracks = load_inputs(args.data)
    cv = {"n_splits": args.folds, "n_repeats": 1, "seed": seed, "schemes": ["grouped"],
          "grouped": {"column": None, "block_size": 5}}
    folds = evaluation.make_folds(tracks, cv)
    index = {g: i for i, g in enumerate(genres)}
    genre_of = dict(zip(tracks["track_id"].astype(str), tracks["genre"].astype(str)))
    n_folds = args.only_folds or args.folds
    rows = []
    print(f"CNN grouped CV: {len(tracks)} tracks, {n_folds} of {args.folds} folds, rules "
          f"{rules}, precisions {precisions}; configured patience "
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
                          # the recorder replays every rule and stops the training
                          "early_stopping": {**es, "enabled": False}}
            recorder = stop_recorder(rules)
            model, info = training.fit(run_params, training.select(spec, train), y["train"],
                                       training.select(spec, val), y["val"],
                                       n_classes=len(genres), seed=seed + k, callbacks=[recorder])
            for rule in rules:
                snap = recorder.snaps[rule]
                model.set_weights(snap["weights"])
                proba = training.predict_proba(model, training.select(spec, test), len(genres))
                correct = int((proba.argmax(1) == y["test"]).sum())
                rows.append({"precision": precision, "rule": "{}@{}".format(*rule), "fold": k,
                             "n_test": len(test), "correct": correct,
                             **{key: snap[key] for key in ("epochs_run", "best_epoch", "wall_s",
                                                           "cpu_s")}})
                print(f"fold {k} {precision} rule {rule}: {correct}/{len(test)} "
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
    ref_rule = "{}@{}".format(*rules[0])
    ref = [r for r in rows if r["precision"] == precisions[0] and r["rule"] == ref_rule]
    ref_cpu, ref_wall = sum(r["cpu_s"] for r in ref), sum(r["wall_s"] for r in ref)
    for precision in precisions:
        for rule in ("{}@{}".format(*r) for r in rules):
            part = [r for r in rows if r["precision"] == precision and r["rule"] == rule]
            if not part:
                continue
            k, n = sum(r["correct"] for r in part), sum(r["n_test"] for r in part)
            lo, hi = evaluation.wilson_interval(k, n)
            cpu, wall = sum(r["cpu_s"] for r in part), sum(r["wall_s"] for r in part)
            summary[f"{precision}/{rule}"] = {
                "accuracy": k / n, "ci95": [lo, hi], "correct": k, "n_tracks": n,
                "fold_accuracy": [r["correct"] / r["n_test"] for r in part],
                "epochs_run": [r["epochs_run"] for r in part],
                "train_wall_s": wall, "train_cpu_s": cpu,
                "cpu_fraction_of_reference": cpu / ref_cpu, "wall_fraction_of_reference": wall / ref_wall}
            print(f"{precision} {rule}: {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}] grouped, "
                  f"train {wall:.0f} s wall / {cpu:.0f} CPU-s ({cpu / ref_cpu:.2f} of the "
                  "reference)", flush=True)
    emit({"benchmark": "cnn_cv", "scheme": "grouped", "folds": n_folds,
          "reference": f"{precisions[0]}/{ref_rule}", "results": summary})


if __name__ == "__main__":
    main()
