"""A classifier of 3 s patches that answers for whole tracks: the ``transfer`` head.

The model input of ``transfer`` holds, per track, up to ``n_patches`` MusiCNN patch vectors side
by side (``p00_…``, ``p01_…``; NaN where a track has fewer patches, e.g. a 2-3 s excerpt has one).
:class:`PatchAveragingClassifier` fits its estimator on every patch (label: the track's genre)
and a track's probabilities are the mean of its patches' probabilities. A short clip is then
classified the way every training example was seen (one 3 s patch), instead of comparing a
single patch with 30 s means (``benchmarks/transfer_generalise.py`` measures both).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


def patch_rows(X: np.ndarray, n_patches: int) -> tuple[np.ndarray, np.ndarray]:
    """(patches (m, d), owner (m,)): the non-NaN patch vectors of ``X`` (n, n_patches·d) and the
    row each came from."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] % n_patches:
        raise ValueError(f"patch table of shape {X.shape} is not n_patches={n_patches} blocks of "
                         "equal width; params:transfer.n_patches must match the embedding table")
    P = X.reshape(len(X), n_patches, -1)
    valid = ~np.isnan(P).any(axis=2)
    empty = np.flatnonzero(~valid.any(axis=1))
    if len(empty):
        raise ValueError(f"{len(empty)} row(s) without a single complete patch (e.g. row "
                         f"{empty[0]}): the embedding table is corrupt; rerun the embedding")
    owner = np.repeat(np.arange(len(X)), valid.sum(axis=1))
    return P[valid], owner


class PatchAveragingClassifier(ClassifierMixin, BaseEstimator):
    """``estimator`` trained on every patch; ``predict_proba`` = the mean over a row's patches.

    With ``prior_columns`` = k, the last k columns of every patch are a genre prior's scores
    (:func:`music_genre.transfer.embed.prior_scores`, in class order), not features: a row's
    probabilities become ``p · prior**prior_weight`` renormalised, where ``prior`` is the mean
    of its patches' scores (+ 1e-3, normalised). The prior comes from tags learnt on a million
    songs by many artists; the head from the training tracks' few artists.
    """

    def __init__(self, estimator=None, n_patches: int = 10, prior_columns: int = 0,
                 prior_weight: float = 1.0):
        self.estimator = estimator
        self.n_patches = n_patches
        self.prior_columns = prior_columns
        self.prior_weight = prior_weight

    def _split(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        k = int(self.prior_columns)
        return (patches[:, :-k], patches[:, -k:]) if k else (patches, None)

    def fit(self, X, y):
        patches, owner = patch_rows(X, self.n_patches)
        features, _ = self._split(patches)
        self.estimator_ = clone(self.estimator).fit(features, np.asarray(y)[owner])
        self.classes_ = self.estimator_.classes_
        if self.prior_columns and len(self.classes_) != int(self.prior_columns):
            raise ValueError(f"the prior has {self.prior_columns} genres but the training data "
                             f"{len(self.classes_)}: every genre needs training tracks")
        self.n_patches_seen_ = len(patches)
        return self

    def predict_proba(self, X):
        patches, owner = patch_rows(X, self.n_patches)
        features, scores = self._split(patches)
        proba = self.estimator_.predict_proba(features)
        n = int(owner.max()) + 1
        counts = np.bincount(owner, minlength=n)[:, None]
        sums = np.zeros((n, proba.shape[1]))
        np.add.at(sums, owner, proba)
        out = sums / counts
        if scores is not None and self.prior_weight:
            prior = np.zeros((n, scores.shape[1]))
            np.add.at(prior, owner, scores)
            prior = prior / counts + 1e-3
            prior /= prior.sum(axis=1, keepdims=True)
            out = out * prior ** float(self.prior_weight)
            out /= out.sum(axis=1, keepdims=True)
        return out

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def named_steps(self):
        """The inner pipeline's steps (the training template looks for a ``pca`` step)."""
        return getattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator,
                       "named_steps", {})
