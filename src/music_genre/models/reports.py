"""The reports of a model on a test split (no Kedro here): metrics, the per-genre table,
predictions, a confusion matrix and training curves (or, for a model fitted in one go, its
confidence and calibration). Every model pipeline writes them through :func:`test_reports`."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

logger = logging.getLogger(__name__)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray,
                           genres: list[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted precision-recall-F1, per-genre table and confusion matrix."""
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(genres)))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred)),
                           "n_test": int(len(y_true))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                     zero_division=0)
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_genre"] = {g: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, g in enumerate(genres)}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def confusion_figure(cm: np.ndarray, genres: list[str], title: str):
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def curves_figure(history: dict[str, list[float]], title: str):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], style,
                        label="validation" if key.startswith("val_") else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if ax.get_lines():
            ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confidence_figure(proba: np.ndarray, y_test: np.ndarray, title: str):
    """For a model fitted in one go (no epochs to plot): how sure it is on the test split.

    Left, the probability of the predicted genre for correct and wrong predictions (a useful
    model is sure when right and unsure when wrong); right, calibration (the accuracy of the
    predictions in each confidence bin against the confidence itself: on the diagonal, a
    probability of 0.8 is right 80 % of the time), with the number of tracks per bin.
    """
    top = proba.max(axis=1)
    right = proba.argmax(axis=1) == y_test
    fig, (left, cal) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.linspace(0, 1, 11)
    left.hist([top[right], top[~right]], bins=bins, stacked=True,
              color=["tab:green", "tab:red"],
              label=[f"correct ({right.sum()})", f"wrong ({(~right).sum()})"])
    left.set_xlabel("probability of the predicted genre")
    left.set_ylabel("test tracks")
    left.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    left.set_xlim(0, 1)
    left.legend(loc="upper left", frameon=False)
    left.set_title("Confidence on the test split")
    which = np.clip(np.digitize(top, bins) - 1, 0, len(bins) - 2)
    centres, accuracy, counts = [], [], []
    for b in range(len(bins) - 1):
        inside = which == b
        if inside.any():
            centres.append(top[inside].mean())
            accuracy.append(right[inside].mean())
            counts.append(int(inside.sum()))
    cal.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    cal.plot(centres, accuracy, "o-", color="tab:blue", label="this model")
    for x, y, n in zip(centres, accuracy, counts):
        cal.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                     fontsize=8)
    cal.set_xlim(0, 1)
    cal.set_ylim(-0.05, 1.25)
    cal.set_xlabel("mean probability of the predicted genre (bin)")
    cal.set_ylabel("accuracy in the bin")
    cal.legend(loc="upper left", frameon=False)
    cal.set_title("Calibration (numbers: tracks per bin)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def test_reports(name: str, kind: str, proba: np.ndarray, y_test: np.ndarray,
                 test_ids: np.ndarray, infer_s: float, train_info: dict[str, Any],
                 genres: list[str]):
    """The template's five reports from test-split probabilities: metrics, per-genre table,
    predictions, confusion matrix and training curves (shared by every model pipeline)."""
    metrics = classification_metrics(y_test, proba, genres)
    metrics.update({
        "model": name,
        "kind": kind,
        "train_seconds": float(train_info["train_seconds"]),
        "inference_ms_per_track": 1000 * infer_s / max(len(y_test), 1),
        "n_train": train_info.get("n_train"),
        "fit_on": train_info.get("fit_on"),
        "epochs_run": train_info.get("epochs_run"),
        "n_parameters": train_info.get("n_parameters"),
        "pca_explained_variance": train_info.get("pca_explained_variance"),
        "input_spec": train_info.get("input_spec"),
    })
    logger.info("%s: test accuracy %.3f, macro F1 %.3f on %d tracks", name,
                metrics["accuracy"], metrics["f1_macro"], len(y_test))
    if metrics["pca_explained_variance"] is not None:
        logger.info("%s: PCA keeps %.2f %% of the variance", name,
                    100 * metrics["pca_explained_variance"])
    per_genre = pd.DataFrame(metrics["per_genre"]).T.rename_axis("genre").reset_index()
    predictions = pd.DataFrame(proba, columns=genres)
    predictions.insert(0, "predicted", [genres[i] for i in proba.argmax(axis=1)])
    predictions.insert(0, "genre", [genres[i] for i in y_test])
    predictions.insert(0, "track_id", test_ids)
    cm_fig = confusion_figure(np.array(metrics["confusion_matrix"]), genres,
                               f"{name}: accuracy {metrics['accuracy']:.1%} "
                               f"({len(y_test)} test tracks)")
    history = train_info.get("history") or {}
    curves_fig = (curves_figure(history, f"{name}: training curves") if history
                  else confidence_figure(proba, y_test,
                                          f"{name}: fitted in one go (no epochs to plot)"))
    return metrics, per_genre, predictions, cm_fig, curves_fig
