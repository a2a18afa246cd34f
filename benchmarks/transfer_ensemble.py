"""Does averaging ``transfer`` with the rich-feature models help on other artists? (issue 19 §3)

    python benchmarks/transfer_ensemble.py
    python benchmarks/transfer_ensemble.py --transfer "msd+msdvgg.embn patch lr0.01 +priormax hop62"

The project's ``ensemble`` averages its members' probabilities with weights chosen by greedy
forward selection on their grouped out-of-fold predictions
(:func:`music_genre.selection.ensemble_weights`). Here the same is measured on the 100-track
sample and the 381 other-artist excerpts, as ``benchmarks/transfer_generalise.py`` measures
``transfer`` (same folds: stratified group 5-fold × repeats, groups = id blocks of 5 per genre;
stratified 5-fold × repeats):

* ``transfer``: a variant of ``transfer_generalise`` (default: the shipped recipe's equivalent);
* ``rf``: the project's random forest (``conf/base/parameters_rf.yml``, built by
  :func:`music_genre.models.builders.build_random_forest`) on the rich features
  (:func:`music_genre.audio.rich_features`, 3 s segments) of each track's first 30 s; an
  excerpt (2-3 s) is looped to 30 s (:func:`music_genre.audio.fix_length`, what the service's
  window does with a short upload);
* ``lr_rich``: a logistic regression (C 0.1) on the same rich features (a cheap stand-in for
  the keras ``mlp``, which reads the same table).

Rows: each member alone; the ensembles with weights chosen on all grouped out-of-fold
predictions (applied to the excerpts: nothing chosen on them); their CV figures re-choose the
weights per test fold on the out-of-fold predictions of the other tracks (nested, so not
flattered). Also fixed transfer weights 0.9/0.8/0.7/0.5 beside rf, for the shape of the curve.
Rich features are cached in ``.cache/transfer_bench/rich_*.npy``. The last line is JSON.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transfer_generalise as tg  # noqa: E402

DEFAULT_TRANSFER = "msd+msdvgg.embn patch lr0.01 +priormax hop62"


def rich(root: Path, tag: str) -> np.ndarray:
    """(files, features) rich features of the first 30 s (a shorter clip looped), cached."""
    from music_genre import audio

    path = tg.CACHE / f"rich_{tag}.npy"
    if path.is_file():
        return np.load(path)
    params = audio.ExtractionParams()
    audio.warm_up(params)
    rows = [audio.rich_features(audio.fix_length(audio.load_audio(f, sr=params.sample_rate),
                                                 params.n_samples), params, 3.0)
            for f in tg.audio_files(root)]  # fmt: skip
    tg.CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, np.stack(rows))
    return np.stack(rows)


def member_probs(make, X: np.ndarray, X_ex: np.ndarray, y: np.ndarray, genres: list[str],
                 folds: pd.DataFrame, ids: np.ndarray) -> tuple[np.ndarray, dict]:
    """Excerpt probabilities (fit on all tracks) and out-of-fold ones per (scheme, repeat), in
    the layout of ``transfer_generalise.evaluate``'s ``_oof``."""
    def fit_predict(train, test_x):
        model = make().fit(X[train], y[train])
        order = [list(model.classes_).index(g) for g in range(len(genres))]
        return model.predict_proba(test_x)[:, order]

    index = {t: i for i, t in enumerate(ids)}
    proba_ex = fit_predict(np.arange(len(X)), X_ex)
    oof: dict = {}
    for (scheme, repeat, _), rep in folds.groupby(["scheme", "repeat", "fold"]):
        test = np.array([index[t] for t in rep["track_id"]])
        train = np.setdiff1d(np.arange(len(X)), test)
        oof.setdefault((scheme, repeat), []).append((test, fit_predict(train, X[test])))
    return proba_ex, oof


def oof_table(oofs: dict[str, dict], ids: np.ndarray, y_names: np.ndarray,
              genres: list[str]) -> pd.DataFrame:
    """The long out-of-fold table :func:`music_genre.selection.ensemble_weights` reads."""
    frames = []
    for model, oof in oofs.items():
        for (scheme, repeat), parts in oof.items():
            for fold, (test, p) in enumerate(parts):
                df = pd.DataFrame(p, columns=genres)
                df["scheme"], df["repeat"], df["fold"] = scheme, repeat, fold
                df["track_id"], df["genre"], df["model"] = ids[test], y_names[test], model
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


def combine(probs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    total = sum(weights.values())
    return sum(w * probs[m] for m, w in weights.items() if w) / total


def score(name: str, members: list[str], oofs: dict, ex: dict, y: np.ndarray, y_ex: np.ndarray,
          genres: list[str], ids: np.ndarray, fixed: dict[str, float] | None = None) -> dict:
    """Excerpt accuracy with weights chosen on all grouped OOF predictions (or ``fixed``), and
    CV accuracy with weights re-chosen per test fold on the other tracks' OOF predictions."""
    from music_genre import selection
    from music_genre.evaluation import wilson_interval

    y_names = np.array(genres)[y]
    table = oof_table({m: oofs[m] for m in members}, ids, y_names, genres)

    def weights_on(tab):
        if fixed is not None:
            return fixed
        if len(members) == 1:
            return {members[0]: 1.0}
        return selection.ensemble_weights(tab, members, genres, "grouped")

    w_all = weights_on(table)
    pred = combine({m: ex[m] for m in members}, w_all).argmax(axis=1)
    k = int((pred == y_ex).sum())
    row = {"variant": name, "weights": w_all,
           "excerpts": (k / len(pred), *wilson_interval(k, len(pred))),
           "excerpt_recall": {g: float(np.mean(pred[y_ex == i] == i))
                              for i, g in enumerate(genres)}}  # fmt: skip
    for scheme in ("grouped", "stratified"):
        hits = n = 0
        for key, parts in oofs[members[0]].items():
            if key[0] != scheme:
                continue
            for f, (test, _) in enumerate(parts):
                rest = table[~table["track_id"].isin(ids[test])]
                w = weights_on(rest)
                p = combine({m: oofs[m][key][f][1] for m in members}, w)
                hits += int((p.argmax(axis=1) == y[test]).sum())
                n += len(test)
        row[scheme] = (hits / n, *wilson_interval(hits / n * len(ids), len(ids)))
    return row


def main() -> None:
    import yaml
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from music_genre.evaluation import make_folds
    from music_genre.models.builders import build_random_forest

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mini", type=Path, default=tg.SHARED / "gtzan_mini")
    ap.add_argument("--excerpts", type=Path, default=tg.SHARED / "gtzan_clips_other_artists")
    ap.add_argument("--transfer", default=DEFAULT_TRANSFER, help="a transfer_generalise variant")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    v = tg.variant(args.transfer)
    nets = {p.split(".")[0] for p in v.features.replace("|", "+").split("+")} | {"msd", "mtt"}
    nets |= set(sum(tg.PRIOR_NETS[v.prior_nets], ()))
    d = tg.load_data(args.mini, args.excerpts, {k: n for k, n in tg.NETS.items() if k in nets},
                     v.augment, frozenset(), None, 1, {v.hop})
    cv = {"n_splits": 5, "n_repeats": args.repeats, "seed": 42,
          "schemes": ["stratified", "grouped"], "grouped": {"block_size": 5}}  # fmt: skip
    folds = make_folds(pd.DataFrame({"track_id": d.ids, "genre": d.y}), cv)
    genres = d.genres
    y = np.array([genres.index(t) for t in d.y])
    y_ex = np.array([genres.index(t) for t in d.y_ex])

    t = tg.evaluate(v, d, folds)
    ex, oofs = {"transfer": t["_proba_ex"]}, {"transfer": t["_oof"]}
    X, X_ex = rich(args.mini, "mini"), rich(args.excerpts, "excerpts")
    rf_params = yaml.safe_load((tg.ROOT / "conf/base/parameters_rf.yml").read_text())["rf"]
    rf_params = {**rf_params, "random_forest": {**rf_params["random_forest"], "n_jobs": 1}}
    ex["rf"], oofs["rf"] = member_probs(lambda: build_random_forest(rf_params, 42), X, X_ex, y,
                                        genres, folds, d.ids)  # fmt: skip
    ex["lr_rich"], oofs["lr_rich"] = member_probs(
        lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)),
        X, X_ex, y, genres, folds, d.ids)

    rows = [score(f"transfer ({args.transfer})", ["transfer"], oofs, ex, y, y_ex, genres, d.ids),
            score("rf (rich features)", ["rf"], oofs, ex, y, y_ex, genres, d.ids),
            score("lr_rich (rich features, C 0.1)", ["lr_rich"], oofs, ex, y, y_ex, genres, d.ids),
            score("transfer + rf, OOF-chosen weights", ["transfer", "rf"], oofs, ex, y, y_ex,
                  genres, d.ids),
            score("transfer + lr_rich, OOF-chosen weights", ["transfer", "lr_rich"], oofs, ex, y,
                  y_ex, genres, d.ids),
            score("transfer + rf + lr_rich, OOF-chosen weights", ["transfer", "rf", "lr_rich"],
                  oofs, ex, y, y_ex, genres, d.ids)]
    for w in (0.9, 0.8, 0.7, 0.5):
        rows.append(score(f"transfer {w} + rf {1 - w:.1f} (fixed)", ["transfer", "rf"], oofs, ex,
                          y, y_ex, genres, d.ids, fixed={"transfer": w, "rf": 1 - w}))
    print(f"train: {len(y)} tracks; excerpts: {len(y_ex)}; CV 5-fold x {args.repeats} repeats")
    print(f"{'variant':46s} | {'381 excerpts':24s} | {'grouped CV':24s} | {'stratified CV':24s}")
    for r in rows:
        print(f"{r['variant']:46s} | {tg.fmt(r['excerpts'])} | {tg.fmt(r['grouped'])} | "
              f"{tg.fmt(r['stratified'])}  weights {r['weights']}", flush=True)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
