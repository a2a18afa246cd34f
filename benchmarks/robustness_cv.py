"""Accuracy on real-world input: each model trained on full-band audio, tested on the same
tracks full band, resampled through 16 kHz / 8 kHz, or MP3-encoded (track-level CV folds).

    python benchmarks/robustness_cv.py [--root ../shared/data/gtzan_mini] \
        [--variants rf_reference rf_rich mlp_rich cnn_segments] [--repeats 1] \
        [--splits 3] [--augment resample_16k mp3] [--cache /tmp/robust_features.npz]

Variants and their parameters are the ``evaluate_cv.variants`` of conf/base (so the numbers are
the pipeline's models). For the feature-table models the pipeline measures the same itself
(``evaluate_cv.test_conditions``, README "Robustness"), including ``rf_robust``'s band limit;
this benchmark remains the way to score CNN variants on degraded spectrograms. Folds: ``evaluate_cv``'s stratified scheme (same seed). ``--augment``
adds degraded copies of each *training* track's features (same label, same fold side: no leak)
to the RF/MLP training set; CNN variants use their ``lowpass`` setting instead. Prints, per
variant and degradation, accuracy mean ± sd over folds and the paired drop versus full band.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.config import OmegaConfigLoader

from music_genre import audio, evaluation
from music_genre.datasets import SpectrogramSet
from music_genre.models import training
from music_genre.models.reports import classification_metrics
from music_genre.pipelines.evaluate_cv.nodes import variant_params

PROJECT = Path(__file__).resolve().parents[1]


def extract(files: list[Path], kinds: list[str], cache: Path) -> dict[str, dict[str, np.ndarray]]:
    if cache.is_file():
        with np.load(cache) as z:
            out = {k: {"features": z[f"{k}/features"], "rich_features": z[f"{k}/rich"],
                       "spectrograms": z[f"{k}/mel"]} for k in kinds if f"{k}/mel" in z}
        if len(out) == len(kinds):
            return out
    params = audio.ExtractionParams()
    store: dict[str, np.ndarray] = {}
    for kind in kinds:
        t0 = time.perf_counter()
        f57, rich, mel = [], [], []
        for f in files:
            y = audio.fix_length(audio.load_audio(f, sr=params.sample_rate), params.n_samples)
            y = audio.degrade(y, params.sample_rate, kind)
            a = audio.analyse(y, params)
            f57.append(a.features)
            rich.append(audio.rich_features(y, params))
            mel.append(audio.normalise_spectrogram(a.mel_db).astype(np.float16))
        store[f"{kind}/features"], store[f"{kind}/rich"] = np.stack(f57), np.stack(rich)
        store[f"{kind}/mel"] = np.stack(mel)
        print(f"extracted {kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    np.savez(cache, **store)
    return extract(files, kinds, cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=PROJECT.parent / "shared/data/gtzan_mini")
    ap.add_argument("--variants", nargs="+", default=["rf_reference", "rf_rich", "mlp_rich"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--splits", type=int, default=None, help="folds (default: evaluate_cv's)")
    ap.add_argument("--augment", nargs="*", default=[])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/music_genre_robustness.npz"))
    ap.add_argument("--out", type=Path, default=None, help="CSV of per-fold results")
    args = ap.parse_args()

    conf = OmegaConfigLoader(str(PROJECT / "conf"), base_env="base", default_run_env="base")
    conf_params = conf["parameters"]
    cv = dict(conf_params["evaluate_cv"])
    if args.splits:
        cv["n_splits"] = args.splits
    genres = list(conf_params["genres"])
    files = sorted(p for p in (args.root / "genres_original").glob("*/*.*")
                   if p.suffix in (".wav", ".au"))
    ids = np.array([p.stem for p in files])
    labels = np.array([p.parent.name for p in files])
    kinds = list(audio.DEGRADATIONS)
    data = extract(files, sorted(set(kinds) | set(args.augment)), args.cache)
    tables = {k: {"features": _table(ids, labels, d["features"]),
                  "rich_features": _table(ids, labels, d["rich_features"]),
                  "spectrograms": SpectrogramSet(ids, d["spectrograms"])}
              for k, d in data.items()}
    folds = evaluation.make_folds(pd.DataFrame({"track_id": ids, "genre": labels}),
                                  {**cv, "schemes": ["stratified"], "n_repeats": args.repeats})
    index = {g: i for i, g in enumerate(genres)}
    live = {m: conf_params[m] for m in ("rf", "mlp", "cnn")}
    rows = []
    for name in args.variants:
        params = {**variant_params(name, cv, live), "verbose": 0}
        source = cv["variants"][name]["input"]
        for r in range(args.repeats):
            for k in range(int(cv["n_splits"])):
                train, val, test = evaluation.fold_partition(folds, "stratified", r, k,
                                                             float(cv["val_fraction"]), 0)
                yl = dict(zip(ids, labels))
                y_of = lambda t: np.array([index[yl[i]] for i in t])  # noqa: E731
                x_train = training.select(tables["full"][source], train)
                y_train = y_of(train)
                if args.augment and source != "spectrograms":
                    x_train = np.vstack([x_train] + [training.select(tables[a][source], train)
                                                     for a in args.augment])
                    y_train = np.concatenate([y_train] * (1 + len(args.augment)))
                t0 = time.perf_counter()
                model, _ = training.fit(params, x_train, y_train,
                                        training.select(tables["full"][source], val),
                                        y_of(val), len(genres), seed=100 * r + k)
                secs = time.perf_counter() - t0
                for kind in kinds:
                    proba = training.predict_proba(model, training.select(tables[kind][source],
                                                                          test), len(genres))
                    m = classification_metrics(y_of(test), proba, genres)
                    rows.append({"variant": name, "augment": "+".join(args.augment) or "-",
                                 "degradation": kind, "repeat": r, "fold": k,
                                 "accuracy": m["accuracy"], "f1_macro": m["f1_macro"],
                                 "train_seconds": secs})
                if hasattr(model, "layers"):
                    import keras

                    keras.backend.clear_session()
                print(f"{name} r{r} f{k}: " + ", ".join(
                    f"{row['degradation']} {row['accuracy']:.2f}" for row in rows[-len(kinds):])
                    + f" ({secs:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    full = df[df["degradation"] == "full"].set_index(["variant", "repeat", "fold"])["accuracy"]
    print("\nvariant | degradation | accuracy mean ± sd (folds) | drop vs full (paired) ± sd")
    for (name, kind), part in df.groupby(["variant", "degradation"], sort=False):
        acc = part.set_index(["variant", "repeat", "fold"])["accuracy"]
        drop = (full.loc[acc.index] - acc).to_numpy()
        print(f"{name} | {kind} | {100 * acc.mean():.1f} ± {100 * acc.std(ddof=1):.1f} % | "
              f"{100 * drop.mean():+.1f} ± {100 * drop.std(ddof=1):.1f} points")


def _table(ids: np.ndarray, labels: np.ndarray, x: np.ndarray) -> pd.DataFrame:
    t = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    t.insert(0, "genre", labels)
    t.insert(0, "track_id", ids)
    return t


if __name__ == "__main__":
    main()
