"""Cross-validated accuracy of MusiCNN embeddings on the real 100-track GTZAN sample, and speed.

    python benchmarks/transfer_cv.py [/path/to/gtzan_mini]

Embeds every track (mean of the MSD_musicnn 200-d penultimate layer over its 3 s patches), then
StandardScaler + LogisticRegression in
* 5-fold stratified CV repeated 3 times (tracks of one artist land on both sides: optimistic);
* a grouped 2-fold "artist proxy": ids 00000-00004 vs 00005-00009 (GTZAN is ordered by artist,
  so contiguous blocks approximate an artist split), all genres at once.
Prints mean ± std over folds and a 95 % t-interval, plus ms per 30 s track.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, RepeatedStratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from music_genre.transfer.embed import embed_file
from music_genre.transfer.musicnn import load_musicnn


def main(root: Path) -> None:
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

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    for name, cv, groups in (
        ("5-fold stratified x3", RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0), None),
        ("grouped ids 0-4 | 5-9", GroupKFold(n_splits=2), (ids >= 5).astype(int)),
    ):  # fmt: skip
        scores = cross_val_score(clf, X, y, cv=cv, groups=groups)
        half = stats.t.ppf(0.975, len(scores) - 1) * scores.std(ddof=1) / np.sqrt(len(scores))
        print(f"{name:24s} accuracy {scores.mean():.3f} ± {scores.std(ddof=1):.3f} (sd over "
              f"{len(scores)} folds), 95% CI of the mean [{scores.mean() - half:.3f}, "
              f"{scores.mean() + half:.3f}]")  # fmt: skip


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan_mini"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
