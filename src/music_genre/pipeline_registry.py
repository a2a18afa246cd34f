"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Pipelines a plain `kedro run` leaves out: they need the network, take long, or are add-ons.
NOT_IN_DEFAULT = {"download", "tune_rf", "tune_mlp", "tune_cnn", "evaluate_cv", "transfer_finetune",
                  "classify"}


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines
