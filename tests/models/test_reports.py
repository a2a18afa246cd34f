"""Report metrics (music_genre.models.reports) against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from music_genre.models.reports import classification_metrics


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 10, 200)
    proba = rng.random((200, 10))
    proba[np.arange(200), y_true] += rng.random(200)  # better than chance
    y_pred = proba.argmax(axis=1)
    genres = [f"g{i}" for i in range(10)]
    m = classification_metrics(y_true, proba, genres)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        assert m[f"precision_{avg}"] == pytest.approx(
            precision_score(y_true, y_pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(recall_score(y_true, y_pred, average=avg))
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y_true, y_pred, average=avg))
    per_genre_f1 = f1_score(y_true, y_pred, average=None)
    assert [m["per_genre"][g]["f1"] for g in genres] == pytest.approx(per_genre_f1)
    assert np.array(m["confusion_matrix"]).sum() == 200
