"""Side-by-side comparison of every trained model (the shape of the reference's results table)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from music_genre.selection import format_figure  # noqa: E402

COLUMNS = ["model", "accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted",
           "train_seconds", "inference_ms_per_track", "n_train", "n_test"]


def compare_models(selection: dict[str, Any],
                   *metrics: dict[str, Any]) -> tuple[pd.DataFrame, str, Any, Any]:
    """Comparison table (CSV + Markdown) in the ranking's order (grouped CV first, then other
    artists, then the test split: ``model_selection``), accuracy/F1 bar chart, per-genre F1."""
    table = pd.DataFrame([{c: m.get(c) for c in COLUMNS} for m in metrics])
    order = [r["model"] for r in (selection or {}).get("ranking", [])]
    figures = {r["model"]: r for r in (selection or {}).get("ranking", [])}
    for f in ("grouped", "holdout"):
        table[f"{f}_accuracy"] = [((figures.get(m) or {}).get(f) or {}).get("accuracy")
                                  for m in table["model"]]
    table["rank"] = [order.index(m) if m in order else len(order) for m in table["model"]]
    table = table.sort_values(["rank", "accuracy"], ascending=[True, False]).reset_index(
        drop=True)

    md = ["| Model | Grouped CV (artist proxy) | Other artists | Test split | Macro F1 (test) "
          "| Training time | Inference / track |",
          "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        row = figures.get(r.model, {})
        mark = " (default)" if r.model == (selection or {}).get("default") else ""
        md.append(f"| {r.model}{mark} | {format_figure(row.get('grouped'))} | {format_figure(row.get('holdout'))} "
                  f"| {100 * r.accuracy:.1f} % | {r.f1_macro:.3f} | {r.train_seconds:.1f} s | "
                  f"{r.inference_ms_per_track:.1f} ms |")
    n_test = int(table["n_test"].max()) if len(table) else 0
    md.append("")
    md.append("Sorted by the grouped cross-validation figure (whole artists held out; "
              "`kedro run --pipeline evaluate_cv`), then accuracy on other artists' music, then "
              f"the test split ({n_test} tracks, same artists as training: optimistic). "
              "95 % Wilson intervals.")
    markdown = "\n".join(md) + "\n"

    # the ranking's three figures side by side, with their 95 % intervals (the test split's
    # from the ranking when it has run, else from the metrics)
    fig_bar, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(table))
    series = [("grouped", "grouped CV (artists held out)"),
              ("holdout", "other artists' music"), ("split", f"test split ({n_test} tracks)")]
    shown = [(key, label) for key, label in series
             if key == "split" or any((figures.get(m) or {}).get(key) for m in table["model"])]
    width = 0.8 / len(shown)
    for i, (key, label) in enumerate(shown):
        figs = [(figures.get(m) or {}).get(key) for m in table["model"]]
        if key == "split":
            figs = [f or {"accuracy": a, "ci95": [a, a]} for f, a in zip(figs, table["accuracy"])]
        acc = np.array([f["accuracy"] if f else np.nan for f in figs])
        err = np.array([[f["accuracy"] - f["ci95"][0], f["ci95"][1] - f["accuracy"]]
                        if f else [0.0, 0.0] for f in figs]).T
        bars = ax.bar(x - 0.4 + width * (i + 0.5), acc, width, yerr=err, capsize=2,
                      label=label, error_kw={"elinewidth": 0.8, "alpha": 0.6})
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=7)
    ax.set_xticks(x, table["model"])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy (95 % interval)")
    genres = list(metrics[0]["per_genre"]) if metrics else []
    if genres:  # the models' classes (params:genres)
        ax.axhline(1 / len(genres), color="grey", ls=":", label=f"chance (1/{len(genres)})")
    # legend beside the axes: inside, it covered whichever bars reached the top corner
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Models in the ranking's order: grouped CV first, then other artists, "
                 "then the test split", fontsize=10)
    fig_bar.tight_layout()

    f1 = pd.DataFrame({m["model"]: [m["per_genre"][g]["f1"] for g in genres] for m in metrics},
                      index=genres)
    fig_genre, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(f1.columns), 1)
    for i, model in enumerate(f1.columns):
        ax.bar(np.arange(len(genres)) + i * width - 0.4 + width / 2, f1[model], width,
               label=model)
    ax.set_xticks(range(len(genres)), genres, rotation=30)
    ax.set_ylabel("F1 on the test split")
    ax.set_ylim(0, 1.05)
    ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Per-genre F1 by model")
    fig_genre.tight_layout()
    return table, markdown, fig_bar, fig_genre
