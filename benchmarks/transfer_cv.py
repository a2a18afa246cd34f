"""Cross-validated accuracy of MusiCNN embeddings on the real 100-track GTZAN sample, and speed.

    python benchmarks/transfer_cv.py [/path/to/gtzan_mini] [--degrade]

Embeds every track (mean of the MSD_musicnn 200-d penultimate layer over its 3 s patches), then
StandardScaler + LogisticRegression in
* 5-fold stratified CV repeated 3 times (tracks of one artist land on both sides: optimistic);
* a grouped 2-fold "artist proxy": ids 00000-00004 vs 00005-00009 (GTZAN is ordered by artist,
  so contiguous blocks approximate an artist split), all genres at once.
Prints mean ± sd over folds and the pooled out-of-fold accuracy over the 100 tracks with a 95 %
Wilson interval, plus ms per 30 s track. For comparison, the same folds for a random forest and an
MLP on the project's 57 librosa features (``music_genre.audio``), with plain settings.

``--degrade``: also embeds every track after each real-world chain of ``audio.DEGRADATIONS``
(16 kHz, 8 kHz, MP3 at 22 050 Hz, then resampled to 16 kHz as an upload is) and scores the
transfer model on the degraded test tracks (same folds), trained three ways: on full-band
embeddings; on those plus the training tracks' degraded copies; on 8 kHz copies only, every test
track being put through 8 kHz first (README "Robustness").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, RepeatedStratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from music_genre import audio
from music_genre.audio import ExtractionParams, analyse_file
from music_genre.transfer.embed import embed_file, embed_signal
from music_genre.transfer.musicnn import load_musicnn


def degraded_embeddings(model, files: list[Path]) -> dict[str, np.ndarray]:
    """Each chain's embeddings: the 22 050 Hz track degraded, then resampled to 16 kHz with the
    service's resampler (``audio.load_audio`` does soxr_hq)."""
    import librosa

    out = {}
    for chain in audio.DEGRADATIONS[1:]:
        rows = []
        for f in files:
            y = audio.degrade(audio.load_audio(f, sr=22050), 22050, chain)
            y16 = librosa.resample(y, orig_sr=22050, target_sr=16000, res_type="soxr_hq")
            rows.append(embed_signal(model, y16.astype(np.float32))["embedding"])
        out[chain] = np.stack(rows)
        print(f"embedded {chain}", flush=True)
    return out


def main(root: Path, degrade: bool = False) -> None:
    files = sorted((root / "genres_original").glob("*/*.*"))
    model = load_musicnn("MSD_musicnn")
    embed_file(model, files[0])  # warm-up: graph compilation
    X, y, ids, secs = [], [], [], []
    for f in files:
        out = embed_file(model, f)
        X.append(out["embedding"])
        y.append(f.parent.name)
        ids.append(int(f.stem.split(".")[1]))
        secs.append(float(out["seconds"]))
    X, y, ids = np.stack(X), np.array(y), np.array(ids)
    print(f"{len(files)} tracks; embedding {np.median(secs) * 1000:.0f} ms median per 30 s track "
          f"(decode + mel + network), total {sum(secs):.1f} s")  # fmt: skip

    params = ExtractionParams()
    F = np.stack([analyse_file(f, params).features for f in files])
    models = {
        "transfer (musicnn+logreg)": (X, make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        "rf (57 features)": (F, RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=-1)),
        "mlp (57 features)": (F, make_pipeline(StandardScaler(), MLPClassifier((256, 128), alpha=1e-3, max_iter=2000, random_state=0))),
    }  # fmt: skip
    schemes = {
        "5-fold stratified x3": list(
            RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0).split(X, y)
        ),
        "grouped ids 0-4 | 5-9": list(GroupKFold(n_splits=2).split(X, y, (ids >= 5).astype(int))),
    }
    if degrade:
        chains = {"full": X, **degraded_embeddings(model, files)}
        clf = models["transfer (musicnn+logreg)"][1]
        # trained on: full-band embeddings; + the degraded copies of the training tracks
        # (augmented); the 8 kHz copies only, with every test track put through 8 kHz first
        # (band-limited, as rf_robust)
        for how in ("full band", "augmented", "band-limited 8 kHz"):
            print(f"\ntransfer trained {how}: fold-mean accuracy per test chain (vs full band):")
            for scheme, folds in schemes.items():
                acc = {c: [] for c in chains}
                for train, test in folds:
                    if how == "augmented":
                        xt = np.vstack([e[train] for e in chains.values()])
                        yt = np.concatenate([y[train]] * len(chains))
                    else:
                        xt = chains["resample_8k" if how.startswith("band") else "full"][train]
                        yt = y[train]
                    fitted = clone(clf).fit(xt, yt)
                    for c in acc:
                        # 8 kHz after any chain is taken as the 8 kHz copy (the band limit
                        # removes what the chains differ in)
                        seen = "resample_8k" if how.startswith("band") else c
                        acc[c].append(np.mean(fitted.predict(chains[seen][test]) == y[test]))
                full = np.array(acc["full"])
                print(f"{scheme:22s} " + ", ".join(
                    f"{c} {np.mean(a):.3f} ({np.mean(np.array(a) - full):+.3f})"
                    for c, a in acc.items()))
    for scheme, folds in schemes.items():
        for name, (data, clf) in models.items():
            fold_acc, hits = [], 0
            for train, test in folds:
                pred = clone(clf).fit(data[train], y[train]).predict(data[test])
                fold_acc.append(np.mean(pred == y[test]))
                hits += int(np.sum(pred == y[test]))
            n = sum(len(test) for _, test in folds)
            # repeats re-use the same tracks: the interval counts each track once
            n_tracks = len(np.unique(np.concatenate([test for _, test in folds])))
            lo, hi = wilson(hits * n_tracks / n, n_tracks)
            print(f"{scheme:22s} {name:26s} {np.mean(fold_acc):.3f} ± {np.std(fold_acc, ddof=1):.3f}"
                  f" (sd, {len(folds)} folds); pooled {hits / n:.3f} [{lo:.3f}, {hi:.3f}] 95% Wilson over {n_tracks} tracks")  # fmt: skip


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan_mini")
    ap.add_argument("--degrade", action="store_true", help="also score degraded test audio")
    args = ap.parse_args()
    main(args.root, args.degrade)
