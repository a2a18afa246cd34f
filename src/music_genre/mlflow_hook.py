"""kedro-mlflow's hook, set up only for the runs it tracks.

kedro-mlflow's own hook connects to the tracking store in ``after_context_created``, before it
knows which pipelines run: with the project's SQLite store that imports SQLAlchemy and Alembic
and checks the database schema (~1 s of CPU on the 2-core machine), and its
``after_catalog_created`` instantiates every dataset of the catalog (600+, importing
matplotlib's and every other dataset type's modules) to look for MLflow metric datasets. A
pipeline listed under ``tracking.disable_tracking.pipelines`` in ``mlflow.yml`` (e.g.
``kedro run --pipeline data_processing``, see conf/base/mlflow.yml) logs nothing, so all of it
was start-up time spent for nothing (``benchmarks/incremental.py``).

:class:`TrackedRunsMlflowHook` is kedro-mlflow's hook with that set-up deferred until the run's
pipelines are known (Kedro sets the requested pipelines before it creates the context): a
tracked run is set up and logged exactly as before; an untracked one skips the store and the
catalog scan. ``settings.py`` registers it in place of the plugin's auto-registered instance
(``DISABLE_HOOKS_FOR_PLUGINS``).
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from kedro_mlflow.framework.hooks.utils import _assert_mlflow_enabled

#: the distribution whose auto-registered hook this one replaces (settings.py)
PLUGIN = "kedro_mlflow"


def _switch_logging(pipeline, catalog, on: bool) -> None:
    """kedro-mlflow's ``switch_catalog_logging`` over the pipeline's datasets only (its own
    instantiates every dataset of the catalog)."""
    for name in pipeline.datasets():
        dataset = catalog.get(name) if name in catalog else None
        if type(dataset).__name__.startswith("Mlflow"):
            dataset._logging_activated = on


class TrackedRunsMlflowHook(MlflowHook):
    """kedro-mlflow's :class:`MlflowHook`; the tracking store is set up only for tracked runs."""

    def __init__(self) -> None:
        super().__init__()
        self.tracks_this_run = True

    @hook_impl
    def after_context_created(self, context) -> None:
        # kedro-mlflow's own step (config from mlflow.yml, resolvers, an already active run)
        # with its store set-up held back until the pipelines are known
        held: list[tuple[KedroMlflowConfig, Any]] = []
        setup = KedroMlflowConfig.setup
        KedroMlflowConfig.setup = lambda config, ctx: held.append((config, ctx))
        try:
            super().after_context_created(context)
        finally:
            KedroMlflowConfig.setup = setup
        from music_genre.pipeline_registry import _requested  # not at settings.py's import

        requested = _requested()
        # None: every pipeline (the default run) or not known (an interactive session): tracked
        self.tracks_this_run = requested is None or _assert_mlflow_enabled(
            requested, self.mlflow_config)
        if self.tracks_this_run:
            for config, ctx in held:
                config.setup(ctx)

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog, conf_creds, parameters,  # noqa: PLR0913
                              save_version, load_versions) -> None:
        if self.tracks_this_run:
            super().after_catalog_created(catalog, conf_catalog, conf_creds, parameters,
                                          save_version, load_versions)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        if self.tracks_this_run:
            super().before_pipeline_run(run_params=run_params, pipeline=pipeline,
                                        catalog=catalog)
            return
        self._is_mlflow_enabled = False
        self._logger.info("kedro-mlflow logging is deactivated for this pipeline in the "
                          "configuration (mlflow.yml: tracking.disable_tracking.pipelines)")
        _switch_logging(pipeline, catalog, False)  # this run's MLflow datasets log nothing

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        if self.tracks_this_run:
            super().after_pipeline_run(run_params=run_params, pipeline=pipeline,
                                       catalog=catalog)
        else:  # kedro-mlflow's switch-back instantiates the whole catalog: this run's only
            _switch_logging(pipeline, catalog, True)
        self.run_id = None  # one hook object serves several sessions in one process

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline,
                          catalog) -> None:
        super().on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline,
                                  catalog=catalog)
        self.run_id = None
