"""The train → evaluate template shared by every model (rf, mlp, cnn, transfer, ...).

``model_input`` is a feature table (one row per track) or a spectrogram set; ``split`` assigns
each track to train/val/test; ``params`` is the model's own parameter block (``params:<model>``).
"""

from __future__ import annotations

import logging
import time
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

from music_genre import audio  # noqa: E402
from music_genre.datasets import SpectrogramSet  # noqa: E402
from music_genre.models import bundle, training  # noqa: E402

logger = logging.getLogger(__name__)


def _labels(split: pd.DataFrame, part: str, genres: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = split[split["split"].astype(str) == part]
    index = {g: i for i, g in enumerate(genres)}
    unknown = sorted(set(rows["genre"].astype(str)) - set(index))
    if unknown:
        raise ValueError(f"split has genres {unknown} that are not in params:genres")
    ids = rows["track_id"].astype(str).to_numpy()
    y = np.array([index[g] for g in rows["genre"].astype(str)], dtype=np.int64)
    return ids, y


def input_columns(model_input, params: dict[str, Any]) -> list[str] | None:
    """The feature columns a table model reads (``params['feature_columns']``): ``all`` the
    table's, ``reference`` (the reference's 57) or an explicit list; None for spectrograms."""
    if isinstance(model_input, SpectrogramSet):
        return None
    choice = params.get("feature_columns", "all")
    if choice == "all":
        return training.feature_columns(model_input)
    if choice == "reference":
        return list(audio.FEATURE_NAMES)
    if isinstance(choice, (list, tuple)):
        return [str(c) for c in choice]
    raise ValueError(f"params:{params.get('name', params['kind'])}.feature_columns={choice!r}: "
                     "use all, reference or a list of column names")


def degraded_rows(degraded: pd.DataFrame | None, chain: str, where: str) -> pd.DataFrame:
    """The rows of chain ``chain`` of the ``degraded_features`` table (``track_id``, ``genre``,
    feature columns), or an error naming ``where`` and the parameter that computes them."""
    available = set() if degraded is None else set(degraded["degradation"].astype(str))
    if chain not in available:
        raise ValueError(f"{where} needs the '{chain}' copies, but the degraded_features table has "
                         f"{sorted(available) or 'none'}: add '{chain}' to "
                         "params:augmentation.degradations (data processing computes them)")
    part = degraded[degraded["degradation"].astype(str) == chain]
    return part.drop(columns="degradation").reset_index(drop=True)


def input_table(model_input, degraded: pd.DataFrame | None, params: dict[str, Any]):
    """What the model reads: ``model_input``, or with ``params['input_degradation']`` (e.g.
    ``resample_8k``) every track as it sounds after that chain, which the service applies to
    every upload too: a band every recording still has, so 16 kHz, 8 kHz and MP3 uploads look
    like the training data (``evaluate_cv`` measures the trade-off)."""
    chain = params.get("input_degradation")
    if not chain:
        return model_input
    name = params.get("name", params["kind"])
    if isinstance(model_input, SpectrogramSet):
        raise ValueError(f"params:{name}.input_degradation: degraded copies exist for feature "
                         "tables only; set it to null for a spectrogram model")
    rows = degraded_rows(degraded, str(chain), f"params:{name}.input_degradation")
    # the same columns as the table it stands for (the 57 for `features`)
    return rows[["track_id", "genre", *training.feature_columns(model_input)]]


def augmented_training_set(x_train: np.ndarray, y_train: np.ndarray, train_ids: np.ndarray,
                           degraded: pd.DataFrame | None, params: dict[str, Any],
                           columns: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """``x_train`` plus the rows of the same training tracks after each chain in
    ``params['augment']`` (e.g. ``[resample_16k, resample_8k, mp3]``), with the same labels.

    Only training tracks are copied, so nothing of a validation or test track is learnt from.
    """
    kinds = list(params.get("augment") or [])
    if not kinds:
        return x_train, y_train
    name = params.get("name", params["kind"])
    if columns is None:
        raise ValueError(f"params:{name}.augment: degraded copies exist for feature tables only; "
                         "spectrogram models have `lowpass` (params:cnn.lowpass)")
    xs, ys = [x_train], [y_train]
    for kind in kinds:
        part = degraded_rows(degraded, kind, f"params:{name}.augment")
        xs.append(training.select(part, train_ids, columns))
        ys.append(y_train)
    logger.info("%s: %d training tracks + their %s copies = %d rows", name, len(y_train),
                "/".join(kinds), sum(len(y) for y in ys))
    return np.vstack(xs), np.concatenate(ys)


def train_model(model_input, split: pd.DataFrame, params: dict[str, Any], genres: list[str],
                seed: int, degraded: pd.DataFrame | None = None) -> tuple[Any, dict[str, Any]]:
    """Fit the model on the training split (plus degraded copies of its tracks when
    ``params['augment']`` lists chains of ``degraded``), early-stopping on the validation split.
    """
    train_ids, y_train = _labels(split, "train", genres)
    val_ids, y_val = _labels(split, "val", genres)
    if not len(train_ids):
        raise ValueError("the split has no training tracks")
    table = input_table(model_input, degraded, params)
    columns = input_columns(table, params)
    x_train, y_fit = augmented_training_set(
        training.select(table, train_ids, columns), y_train, train_ids, degraded, params,
        columns)
    model, info = training.fit(params, x_train, y_fit,
                               training.select(table, val_ids, columns), y_val,
                               n_classes=len(genres), seed=int(params.get("seed", seed)))
    if columns is not None:
        # what the service must compute for this model: the columns, in order, and how
        # (bundle_model puts it in the model's contract; the metrics report it)
        info["input_spec"] = {"columns": columns, "rich_segment_s": params.get("rich_segment_s"),
                              "degradation": params.get("input_degradation")}
        info["n_features"] = len(columns)
    return model, info


def bundle_model(model, train_info: dict[str, Any], params: dict[str, Any], genres: list[str],
                 extraction: dict[str, Any], musicnn: dict[str, Any] | None = None
                 ) -> bundle.ModelBundle:
    """The ``{model}.model`` bundle: the fitted model with its serving contract (this run's
    ``params:extraction``, the input spec, ``params:musicnn`` for a head on the pretrained
    networks, the genres), which the service and classify read instead of today's conf."""
    return bundle.trained_bundle(model, train_info, params, genres, extraction, musicnn)


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


def _confusion_figure(cm: np.ndarray, genres: list[str], title: str):
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


def _curves_figure(history: dict[str, list[float]], title: str):
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


def _confidence_figure(proba: np.ndarray, y_test: np.ndarray, title: str):
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
    cm_fig = _confusion_figure(np.array(metrics["confusion_matrix"]), genres,
                               f"{name}: accuracy {metrics['accuracy']:.1%} "
                               f"({len(y_test)} test tracks)")
    history = train_info.get("history") or {}
    curves_fig = (_curves_figure(history, f"{name}: training curves") if history
                  else _confidence_figure(proba, y_test,
                                          f"{name}: fitted in one go (no epochs to plot)"))
    return metrics, per_genre, predictions, cm_fig, curves_fig


def evaluate_model(model, model_input, split: pd.DataFrame, train_info: dict[str, Any],
                   params: dict[str, Any], genres: list[str],
                   degraded: pd.DataFrame | None = None):
    """Test-split metrics, per-genre table, confusion matrix, training curves, predictions."""
    if isinstance(model, bundle.ModelBundle):  # the saved {model}.model: what is served
        model = model.model
    test_ids, y_test = _labels(split, "test", genres)
    table = input_table(model_input, degraded, params)
    x_test = training.select(table, test_ids, input_columns(table, params))
    start = time.perf_counter()
    proba = training.predict_proba(model, x_test, len(genres))
    infer_s = time.perf_counter() - start
    return test_reports(params.get("name", params["kind"]), params["kind"], proba, y_test,
                        test_ids, infer_s, train_info, genres)
