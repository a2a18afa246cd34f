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


def _requested() -> list[str] | None:
    """The pipeline names of this ``kedro run`` (None: every pipeline, e.g. the default run,
    kedro viz or the API)."""
    from kedro.framework.project import pipelines as project_pipelines

    requested = getattr(project_pipelines, "_requested_pipelines", None)
    return None if requested is None or "__default__" in requested else list(requested)


def _pipeline_folders(models: set[str], requested: list[str] | None) -> dict[str, Pipeline]:
    """``find_pipelines`` over the folders only. Kedro 1.7 imports just the folders a
    ``kedro run --pipeline x`` names and fails on a name without a folder: a roster model is
    taken out of that request while the folders are searched."""
    if requested is None:
        return find_pipelines(raise_errors=True)
    from kedro.framework.project import pipelines as project_pipelines

    saved = project_pipelines._requested_pipelines
    project_pipelines._requested_pipelines = [n for n in requested if n not in models]
    try:
        found = find_pipelines(raise_errors=True)
    finally:
        project_pipelines._requested_pipelines = saved
    return found


def register_pipelines() -> dict[str, Pipeline]:
    models = roster.template_models()
    studies = {f"tune_{m}": m for m in roster.tunable_models()}
    requested = _requested()
    pipelines = _pipeline_folders(set(models) | set(studies), requested)
    if requested is not None and not set(requested) & (set(models) | set(studies)):
        # e.g. `kedro run --pipeline data_processing`: no model pipeline is asked for, so the
        # training modules (matplotlib, sklearn.metrics: ~1.3 CPU-s) are not imported
        return pipelines
    from music_genre.pipelines.training import single_model_pipeline
    from music_genre.pipelines.tuning import single_tuning_pipeline

    for name in models:
        pipelines[name] = single_model_pipeline(name)
    for name, model in studies.items():
        pipelines[name] = single_tuning_pipeline(model)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT | set(studies)),
        Pipeline([]),
    )
    return pipelines
