"""Nodes of ``evaluate_cv``: folds → every configured model variant on every fold → summary.

A *variant* is a model parameter block plus the dataset it learns from, listed under
``evaluate_cv.variants`` (``conf/base/parameters_evaluate_cv.yml``). Its block is one of the live
model blocks (``params:rf``, ``params:mlp``, ``params:cnn``: what ``kedro run --pipeline rf``
trains) or one of ``evaluate_cv.reference_recipe`` (the reference project's recipe, exactly),
optionally with ``overrides`` (e.g. fewer CNN epochs, said in the report).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from music_genre import __version__, evaluation, roster  # noqa: E402
from music_genre.models import training  # noqa: E402
from music_genre.models.inputs import (  # noqa: E402
    SpectrogramSet,
    augmented_training_set,
    degraded_rows,
    input_columns,
    input_table,
)
from music_genre.models.inputs import fit_on as inputs_fit_on  # noqa: E402  (`inputs`: a local)
from music_genre.models.reports import classification_metrics  # noqa: E402

logger = logging.getLogger(__name__)


def make_cv_folds(manifest: pd.DataFrame, predefined: pd.DataFrame, groups: pd.DataFrame,
                  cv: dict[str, Any]) -> pd.DataFrame:
    """Track-level folds of every usable track for each scheme (see ``evaluation.make_folds``)."""
    ok = manifest[manifest["status"].astype(str) == "ok"]
    folds = evaluation.make_folds(ok, cv, predefined=predefined, groups=groups)
    for (scheme, r), part in folds.groupby(["scheme", "repeat"]):
        if r == 0:
            logger.info("CV folds %s: %d tracks, %d folds, %d groups", scheme, len(part),
                        part["fold"].nunique(), part["group"].nunique())
    return folds


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def variant_params(name: str, cv: dict[str, Any], live: dict[str, dict[str, Any]]) -> dict:
    """The full model block of variant ``name``: its source block + its overrides."""
    spec = cv["variants"][name]
    source = str(spec["params"])
    if source.startswith("reference."):
        recipes = cv.get("reference_recipe", {})
        key = source.split(".", 1)[1]
        if key not in recipes:
            raise ValueError(f"evaluate_cv.variants.{name}.params: no '{key}' under "
                             f"evaluate_cv.reference_recipe (has {sorted(recipes)})")
        block = recipes[key]
    elif source in live:
        block = live[source]
    else:
        raise ValueError(f"evaluate_cv.variants.{name}.params: '{source}' is neither a live model "
                         f"block {sorted(live)} nor reference.<model>")
    params = _merge(block, spec.get("overrides", {}))
    params["name"] = name
    return params


def _condition_chain(condition: str, input_chain: str | None) -> str:
    """The chain a model's test rows go through: the user's (``condition``), then the model's own
    band limit (``input_degradation``), as the service would apply it."""
    if not input_chain:
        return condition
    return input_chain if condition in ("full", input_chain) else f"{condition}>{input_chain}"


def _fingerprint(data) -> str:
    """A content hash of a model's input (a feature table or a spectrogram set)."""
    h = hashlib.sha1()
    if data is None:
        return "none"
    if isinstance(data, SpectrogramSet):
        h.update("\x1f".join(data.track_ids).encode())
        for start in range(0, len(data), 64):  # memory-mapped: a chunk at a time
            h.update(np.ascontiguousarray(data.data[start:start + 64]).tobytes())
    else:
        table = data.sort_values(list(data.columns[:1]), kind="mergesort").reset_index(drop=True)
        h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        h.update("\x1f".join(map(str, table.columns)).encode())
    return h.hexdigest()


def _fold_key(**parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def _cached_fold(entry: Mapping[str, np.ndarray]) -> tuple[list[dict], list[pd.DataFrame]]:
    rows = json.loads(str(entry["metrics"]))
    oof = pd.read_csv(io.StringIO(str(entry["oof"])))
    oof["track_id"] = oof["track_id"].astype(str)
    return rows, [oof]


def cross_validate_models(features: pd.DataFrame, rich_features: pd.DataFrame, spectrograms,
                          degraded: pd.DataFrame, embeddings: pd.DataFrame, folds: pd.DataFrame,
                          fold_cache: Mapping[str, Mapping[str, np.ndarray]] | None,
                          cv: dict[str, Any], parameters: dict[str, Any], genres: list[str]
                          ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """Train and score every variant in ``evaluate_cv.run`` on every fold.

    Returns per-fold metrics and the out-of-fold probabilities (one row per scheme, repeat and
    test track, per variant), from which the summary and the CV ensembles are computed.

    A variant whose block has ``augment`` also learns from those degraded copies of its training
    tracks (never of the test fold); one with ``input_degradation`` reads that copy of every
    track. Every ``evaluate_cv.test_conditions`` other than ``full`` scores the same fold's model
    on the test tracks after that chain (then the model's own ``input_degradation``, as the
    service applies it), reported as ``<variant>@<condition>``: the accuracy a user sending such
    audio gets. Feature-table variants only: there are no degraded spectrograms.

    Each fold's results are stored in ``fold_cache`` under a hash of everything they depend on
    (the variant's parameters, the fold's track ids, the input data's content, the test
    conditions, the seed, the package version): a re-run with unchanged inputs and parameters
    reads them back instead of training again (the CNN's folds cost minutes each). Returns the
    new cache entries as a third output.
    """
    inputs = {"features": features, "rich_features": rich_features,
              "spectrograms": spectrograms, "musicnn_embeddings": embeddings}
    conditions = evaluation.name_list(cv.get("test_conditions")) or ["full"]
    evaluation.check_chains(conditions, "evaluate_cv.test_conditions")
    # the live model blocks (params:<model>) of every model of the roster
    live = {name: parameters[name] for name in roster.names() if name in parameters}
    index = {g: i for i, g in enumerate(genres)}
    seed = int(cv["seed"])  # evaluate_cv.seed: ${globals:seed}
    metric_rows, oof_frames = [], []
    fold_cache = fold_cache if fold_cache is not None else {}
    new_entries: dict[str, dict[str, Any]] = {}
    reused = 0
    # from the command line as one string: --params "evaluate_cv.run=rf+cnn_segments"
    run = evaluation.name_list(cv.get("run"))
    for name in run:
        if name not in cv["variants"]:
            raise ValueError(f"evaluate_cv.run lists '{name}', which is not in "
                             f"evaluate_cv.variants ({sorted(cv['variants'])})")
        spec = cv["variants"][name]
        source = spec["input"]
        if source not in inputs:
            raise ValueError(f"evaluate_cv.variants.{name}.input: '{source}' is not one of "
                             f"{sorted(inputs)}")
        if source == "musicnn_embeddings":
            have = set() if embeddings is None or not len(embeddings) else set(
                embeddings["track_id"].astype(str))
            lacking = set(folds["track_id"].astype(str)) - have
            if lacking:
                logger.warning("CV %s skipped: the transfer pipeline's embeddings lack %d of "
                               "the %d tracks (run `kedro run --pipeline transfer` on this "
                               "collection first)", name, len(lacking),
                               folds["track_id"].nunique())
                continue
        params = variant_params(name, cv, live)
        data = input_table(inputs[source], degraded, params)  # or its band-limited copy
        if not isinstance(data, SpectrogramSet):  # the test rows of every condition, up front
            where = f"evaluate_cv.test_conditions (variant {name})"
            chains = {c: _condition_chain(c, params.get("input_degradation"))
                      for c in conditions}
            tests = {c: inputs[source] if chain == "full" else degraded_rows(degraded, chain, where)
                     for c, chain in chains.items()}
        else:  # no degraded spectrograms: the CNN is scored on full-band audio only
            tests = {"full": data}
        data_fp = _fingerprint(data)
        test_fps = {c: _fingerprint(t) for c, t in tests.items()}
        degraded_fp = (_fingerprint(degraded) if params.get("augment") else None)
        max_repeats = int(spec.get("n_repeats", cv["n_repeats"]))
        fit_on = inputs_fit_on(params)  # train | train+val, checked before any fold
        parts = folds[folds["repeat"] < max_repeats]
        if spec.get("schemes"):  # a variant's budget: only these schemes
            parts = parts[parts["scheme"].isin(evaluation.name_list(spec["schemes"]))]
        for (scheme, r), part in parts.groupby(["scheme", "repeat"], sort=False):
            r = int(r)
            for k in (int(k) for k in sorted(part["fold"].unique())):
                train, val, test = evaluation.fold_partition(folds, scheme, r, k,
                                                             float(cv["val_fraction"]), seed)
                if fit_on == "train+val":  # as the model's own training: val tracks fitted on
                    train, val = np.concatenate([train, val]), val[:0]
                key = _fold_key(variant=name, params=params, scheme=scheme, repeat=r, fold=k,
                                train=sorted(map(str, train)), val=sorted(map(str, val)),
                                test=sorted(map(str, test)), data=data_fp, tests=test_fps,
                                degraded=degraded_fp, seed=seed + 100 * r + k, genres=genres,
                                version=__version__)
                if key in fold_cache:
                    rows, frames = _cached_fold(fold_cache[key])
                    metric_rows.extend(rows)
                    oof_frames.extend(frames)
                    reused += 1
                    continue
                first_row, first_frame = len(metric_rows), len(oof_frames)
                y = {n: np.array([index[g] for g in part.set_index("track_id").loc[ids, "genre"]
                                  .astype(str)]) for n, ids in (("train", train), ("val", val),
                                                                ("test", test))}
                start = time.perf_counter()
                cols = input_columns(data, params)  # the model's feature_columns, as trained
                x_train, y_train = augmented_training_set(
                    training.select(data, train, cols), y["train"], train, degraded, params, cols)
                model, info = training.fit(
                    {**params, "verbose": 0}, x_train, y_train,
                    training.select(data, val, cols), y["val"], n_classes=len(genres),
                    seed=seed + 100 * r + k)
                train_s = time.perf_counter() - start
                for condition, test_data in tests.items():
                    proba = training.predict_proba(model, training.select(test_data, test, cols),
                                                   len(genres))
                    label = name if condition == "full" else f"{name}@{condition}"
                    metric_rows.append({"model": label, "scheme": scheme, "repeat": r, "fold": k,
                                        "accuracy": float(np.mean(proba.argmax(1) == y["test"])),
                                        "f1_macro": _fold_f1(y["test"], proba),
                                        "n_train": len(train), "n_val": len(val),
                                        "n_test": len(test),
                                        "epochs_run": info.get("epochs_run"),
                                        "train_seconds": train_s})
                    oof_frames.append(_oof_frame(proba, y["test"], test, genres,
                                                 label, scheme, r, k))
                _free(model)
                new_entries[key] = {
                    "metrics": np.array(json.dumps(metric_rows[first_row:], default=float)),
                    "oof": np.array(pd.concat(oof_frames[first_frame:]).to_csv(index=False))}
            done = [row["accuracy"] for row in metric_rows
                    if row["model"] == name and row["scheme"] == scheme and row["repeat"] == r]
            logger.info("CV %s %s repeat %d: accuracy %.3f (mean of %d folds)", name, scheme, r,
                        np.mean(done), len(done))
    if not metric_rows:
        raise ValueError("evaluate_cv.run is empty: list the variants to cross-validate")
    if reused:
        logger.info("CV: %d fold(s) read back from the fold cache (same inputs and parameters), "
                    "%d trained", reused, len(new_entries))
    return pd.DataFrame(metric_rows), pd.concat(oof_frames, ignore_index=True), new_entries


def _oof_frame(proba: np.ndarray, y_test: np.ndarray, test: np.ndarray, genres: list[str],
               model: str, scheme: str, repeat: int, fold: int) -> pd.DataFrame:
    oof = pd.DataFrame(proba, columns=genres)
    oof.insert(0, "predicted", [genres[i] for i in proba.argmax(axis=1)])
    oof.insert(0, "genre", [genres[i] for i in y_test])
    oof.insert(0, "track_id", test)
    for col, value in (("fold", fold), ("repeat", repeat), ("scheme", scheme), ("model", model)):
        oof.insert(0, col, value)
    return oof


def _fold_f1(y_true: np.ndarray, proba: np.ndarray) -> float:
    # macro F1 over the genres in this fold (true or predicted): a grouped fold may hold only a
    # few genres, and counting the absent ones as F1 = 0 would sink every model alike
    return float(f1_score(y_true, proba.argmax(axis=1), average="macro", zero_division=0))


def _free(model) -> None:
    # dozens of Keras models in one process: drop the graph state between folds
    if hasattr(model, "layers"):
        import keras

        keras.backend.clear_session()


def add_cv_ensembles(fold_metrics: pd.DataFrame, oof: pd.DataFrame, cv: dict[str, Any],
                     genres: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each ``evaluate_cv.ensembles`` entry (name → member variants) as a variant of its own: the
    members' out-of-fold probabilities averaged on the folds they share (same folds, so fair)."""
    metric_rows, frames = [fold_metrics], [oof]
    keys = ["scheme", "repeat", "fold", "track_id"]
    for name, members in (cv.get("ensembles") or {}).items():
        present = [m for m in members if m in set(oof["model"])]
        if len(present) < 2:
            logger.warning("CV ensemble %s: needs two of %s in evaluate_cv.run; skipped", name,
                           members)
            continue
        avg = evaluation.average_probabilities([oof[oof["model"] == m] for m in present],
                                               genres, keys=keys)
        avg["repeat"] = avg["repeat"].astype(int)
        avg["fold"] = avg["fold"].astype(int)
        avg.insert(0, "model", name)
        frames.append(avg)
        index = {g: i for i, g in enumerate(genres)}
        for (scheme, r, k), part in avg.groupby(["scheme", "repeat", "fold"]):
            y = np.array([index[g] for g in part["genre"]])
            m = classification_metrics(y, part[genres].to_numpy(float), genres)
            secs = fold_metrics[(fold_metrics["model"].isin(present))
                                & (fold_metrics["scheme"] == scheme)
                                & (fold_metrics["repeat"] == r) & (fold_metrics["fold"] == k)]
            metric_rows.append(pd.DataFrame([{
                "model": name, "scheme": scheme, "repeat": r, "fold": k,
                "accuracy": m["accuracy"], "f1_macro": _fold_f1(y, part[genres].to_numpy(float)),
                "n_test": len(part),
                "train_seconds": float(secs["train_seconds"].sum())}]))
    return pd.concat(metric_rows, ignore_index=True), pd.concat(frames, ignore_index=True)


def summarise_cv(fold_metrics: pd.DataFrame, oof: pd.DataFrame, genres: list[str]):
    """Summary table (mean ± sd, pooled accuracy with a 95 % interval), Markdown and a chart
    (with the chance level ``1/len(genres)``)."""
    summary = evaluation.summarise_folds(fold_metrics, oof)
    markdown = evaluation.summary_markdown(summary)
    schemes = list(dict.fromkeys(summary["scheme"]))
    models = list(dict.fromkeys(summary["model"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(models) * len(schemes)), 4))
    width = 0.8 / max(len(schemes), 1)
    for i, scheme in enumerate(schemes):
        part = summary[summary["scheme"] == scheme].set_index("model").reindex(models)
        x = np.arange(len(models)) + i * width - 0.4 + width / 2
        ax.bar(x, part["accuracy_pooled"], width, label=scheme,
               yerr=[part["accuracy_pooled"] - part["accuracy_ci95_low"],
                     part["accuracy_ci95_high"] - part["accuracy_pooled"]], capsize=3)
    ax.set_xticks(range(len(models)), models, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("out-of-fold accuracy (95 % Wilson)")
    ax.axhline(1 / len(genres), color="grey", ls=":", label=f"chance (1/{len(genres)})")
    # beside the axes: inside, it covered the last models' bars
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Track-level cross-validation")
    fig.tight_layout()
    return summary, markdown, fig
