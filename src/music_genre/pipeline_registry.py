"""Project pipelines: every folder under ``pipelines/`` (``find_pipelines``), plus, from the
model roster (``music_genre.roster``), ``kedro run --pipeline <model>`` for each template model
and ``kedro run --pipeline tune_<model>`` for each tunable one: the model list lives in the
roster only, not in one folder per model."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from music_genre import roster

# Pipelines a plain `kedro run` leaves out: they need the network, take long, or are add-ons.
NOT_IN_DEFAULT = {"download", "tuning", "evaluate_cv", "transfer_finetune", "classify"}


def _pipeline_folders(models: set[str]) -> dict[str, Pipeline]:
    """``find_pipelines`` over the folders only. Kedro 1.7 imports just the folders a
    ``kedro run --pipeline x`` names and fails on a name without a folder: a roster model is
    taken out of that request while the folders are searched."""
    from kedro.framework.project import pipelines as project_pipelines

    requested = getattr(project_pipelines, "_requested_pipelines", None)
    if requested is None or "__default__" in requested:
        return find_pipelines(raise_errors=True)
    project_pipelines._requested_pipelines = [n for n in requested if n not in models]
    try:
        found = find_pipelines(raise_errors=True)
    finally:
        project_pipelines._requested_pipelines = requested
    return found


def register_pipelines() -> dict[str, Pipeline]:
    from music_genre.pipelines.training import single_model_pipeline
    from music_genre.pipelines.tuning import single_tuning_pipeline

    models = roster.template_models()
    studies = {f"tune_{m}": m for m in roster.tunable_models()}
    pipelines = _pipeline_folders(set(models) | set(studies))
    for name in models:
        pipelines[name] = single_model_pipeline(name)
    for name, model in studies.items():
        pipelines[name] = single_tuning_pipeline(model)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT | set(studies)),
        Pipeline([]),
    )
    return pipelines
