"""Which model to trust: ranking by artist-disjoint evidence, and ensemble weights chosen on it.

Three figures per model, best evidence first:

* ``grouped``: pooled out-of-fold accuracy of grouped cross-validation (id blocks per genre as the
  artist proxy, or a user's artist column): no artist of a test fold was heard in training.
* ``holdout``: accuracy on a folder of music by artists the collection does not contain (e.g. the
  other-artist GTZAN excerpts), asked through the service's own input code.
* ``split``: accuracy on the test part of the train/val/test split. On GTZAN's 100-track sample
  the same artists sit in training and test, so it flatters every model: shown, never ranked by.

Models are sorted by the grouped figure (then holdout, then split); the first is the served
default. No Kedro here: plain functions on tables, used by the pipelines and the service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from music_genre.evaluation import wilson_interval

logger = logging.getLogger(__name__)

FIGURES = ("grouped", "holdout", "split")
MEANING = {
    "grouped": "grouped CV: out-of-fold accuracy with whole artists (id blocks) held out",
    "holdout": "other artists: accuracy on music by artists absent from the training collection",
    "split": "test split: accuracy on the held-out tracks of the train/val/test split "
             "(same artists as training on GTZAN's sample: optimistic)",
}


def _cv_figures(cv_summary: pd.DataFrame, scheme: str) -> dict[str, dict[str, float]]:
    if cv_summary is None or not len(cv_summary) or "scheme" not in cv_summary:
        return {}
    part = cv_summary[cv_summary["scheme"].astype(str) == scheme]
    return {str(r["model"]): {"accuracy": float(r["accuracy_pooled"]),
                              "ci95": [float(r["accuracy_ci95_low"]),
                                       float(r["accuracy_ci95_high"])],
                              "n": int(r["n_tracks"])}
            for r in part.to_dict("records")}


def _figure(accuracy: float | None, n: int | None) -> dict[str, Any] | None:
    if accuracy is None or not n:
        return None
    lo, hi = wilson_interval(accuracy * n, int(n))
    return {"accuracy": float(accuracy), "ci95": [lo, hi], "n": int(n)}


def rank_models(metrics: Mapping[str, dict[str, Any]], cv_summary: pd.DataFrame | None,
                holdout: Mapping[str, dict[str, Any]] | None,
                cv_scheme: str = "grouped") -> dict[str, Any]:
    """Per model its three figures (accuracy, 95 % Wilson interval, n), sorted by the grouped
    figure, then the holdout one, then the split one; ``default`` is the first model and
    ``chosen_by`` says which figure decided it."""
    grouped = _cv_figures(cv_summary, cv_scheme)
    stratified = _cv_figures(cv_summary, "stratified")
    rows = []
    for name, m in metrics.items():
        h = (holdout or {}).get(name)
        rows.append({
            "model": name,
            "grouped": grouped.get(name),
            "stratified": stratified.get(name),
            "holdout": _figure(h.get("accuracy"), h.get("n")) if h else None,
            "split": _figure(m.get("accuracy"), m.get("n_test")),
            "trained_on_demo": bool(m.get("trained_on_demo", False)),
        })

    def key(row):
        return tuple(-(row[f]["accuracy"] if row[f] else -1.0) for f in FIGURES)

    rows.sort(key=key)
    chosen_by = next((f for f in FIGURES if rows and rows[0][f] is not None), None)
    if chosen_by != "grouped" and rows:
        logger.info("Model ranking: no grouped cross-validation figure for %s; ranked by the "
                       "%s figure. Run `kedro run --pipeline evaluate_cv` to rank by "
                       "artist-disjoint evidence.",
                       [r["model"] for r in rows if r["grouped"] is None], chosen_by)
    return {"ranking": rows, "default": rows[0]["model"] if rows else None,
            "chosen_by": chosen_by, "meaning": MEANING, "cv_scheme": cv_scheme}


def format_figure(figure: dict[str, Any] | None) -> str:
    """``87.4 % [80, 93]``: a figure with its 95 % interval (``–`` when there is none)."""
    if not figure:
        return "–"
    lo, hi = figure.get("ci95") or (None, None)
    interval = f" [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None else ""
    return f"{100 * float(figure['accuracy']):.1f} %{interval}"


def ranking_markdown(selection: dict[str, Any]) -> str:
    """The ranking as a Markdown table with one sentence per figure."""

    def cell(fig):
        if not fig:
            return "–"
        lo, hi = fig["ci95"]
        return f"{100 * fig['accuracy']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (n={fig['n']})"

    lines = ["| Rank | Model | Grouped CV (artist proxy) | Other artists | Test split |",
             "|---|---|---|---|---|"]
    for i, row in enumerate(selection["ranking"], 1):
        mark = " (served default)" if row["model"] == selection["default"] else ""
        lines.append(f"| {i} | {row['model']}{mark} | {cell(row['grouped'])} | "
                     f"{cell(row['holdout'])} | {cell(row['split'])} |")
    lines.append("")
    lines.append(f"Sorted by the {selection['chosen_by'] or 'grouped'} figure; 95 % Wilson "
                 "intervals, n = tracks (or excerpts).")
    for f in FIGURES:
        lines.append(f"- **{f}**: {selection['meaning'][f]}.")
    return "\n".join(lines) + "\n"


def ensemble_weights(oof: pd.DataFrame, members: Sequence[str], genres: Sequence[str],
                     scheme: str = "grouped", rounds: int = 25) -> dict[str, float] | None:
    """Weights of ``members`` chosen on their out-of-fold predictions of ``scheme`` (greedy
    forward selection with replacement, Caruana et al. 2004: each round adds the member whose
    addition most raises the averaged accuracy, ties broken by log-loss). Members never added
    get weight 0 (left out). None when fewer than two members have such predictions."""
    if oof is None or not len(oof) or "scheme" not in oof:
        return None
    part = oof[oof["scheme"].astype(str) == scheme]
    present = [m for m in members if m in set(part["model"].astype(str))]
    if len(present) < 2:
        return None
    keys = ["repeat", "fold", "track_id"]
    tables = {m: part[part["model"] == m].set_index(keys).sort_index() for m in present}
    common = tables[present[0]].index
    for m in present[1:]:
        common = common.intersection(tables[m].index)
    if not len(common):
        return None
    probs = {m: tables[m].loc[common, list(genres)].to_numpy(float) for m in present}
    index = {g: i for i, g in enumerate(genres)}
    y = np.array([index[g] for g in tables[present[0]].loc[common, "genre"]])

    def score(p):
        acc = float(np.mean(p.argmax(1) == y))
        nll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1))))
        return acc, -nll

    counts = dict.fromkeys(present, 0)
    total = np.zeros_like(probs[present[0]])
    best_so_far = None
    for _ in range(rounds):
        n = sum(counts.values())
        scored = [(score((total + probs[m]) / (n + 1)), m) for m in present]
        (s, m) = max(scored, key=lambda t: t[0])
        if best_so_far is not None and s < best_so_far:
            break  # no member helps any more
        best_so_far = s
        counts[m] += 1
        total += probs[m]
    n = sum(counts.values())
    weights = {m: counts[m] / n for m in present}
    logger.info("Ensemble weights from %s out-of-fold predictions (%d tracks): %s", scheme,
                len(set(common.get_level_values("track_id"))),
                {m: round(w, 3) for m, w in weights.items()})
    return weights
