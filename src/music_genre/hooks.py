"""Project hooks: pin the local tracking store to the project, say where artifacts went, and make
a run read back what it wrote itself."""

from __future__ import annotations

import logging
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import Version

logger = logging.getLogger(__name__)


class ProjectHooks:
    def __init__(self) -> None:
        self._catalog = None

    @hook_impl
    def after_context_created(self, context) -> None:
        """Make the relative ``sqlite:///data/...`` MLflow URI of ``conf/`` absolute.

        kedro-mlflow resolves relative *file* paths against the project but not SQLite URLs, and
        MLflow caches one store per URI string: a run started from another directory, or a
        second project in the same process, would write into the wrong database.
        (kedro-mlflow's own hook, a plugin, runs before project hooks.)
        """
        config = getattr(context, "mlflow", None)
        uri = getattr(getattr(config, "server", None), "mlflow_tracking_uri", None) or ""
        prefix = "sqlite:///"
        if not uri.startswith(prefix) or uri.startswith(prefix + "/"):
            return
        config.server.mlflow_tracking_uri = (
            prefix + str((Path(context.project_path) / uri[len(prefix):]).resolve()))
        config.setup(context)  # again: client, tracking URI and experiment on the right store

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:  # noqa: ARG002
        if self._catalog is None:
            return
        dataset = self._catalog.get(dataset_name)
        if dataset is None or isinstance(dataset, MemoryDataset):
            return
        pin_to_own_version(dataset)
        try:
            path = dataset._get_save_path()  # versioned datasets: the path of this run's version
        except Exception:
            described = dataset._describe()
            path = described.get("filepath") or described.get("path")
        if path:
            logger.info("Saved '%s' to %s", dataset_name, path)


def pin_to_own_version(dataset) -> None:
    """Load a versioned dataset from now on at the version this run just saved.

    Kedro loads the *latest* version on disk: a dataset written by one node and read by the next
    would be read from another run's folder if a run started later wrote it in between (seen
    here: two ``evaluate_cv`` runs side by side, and one run's summary came from the other
    run's fold metrics). Pinning makes every run read back its own outputs.
    """
    version = getattr(dataset, "_version", None)
    if not isinstance(version, Version):
        return
    saved = dataset.resolve_save_version()
    if saved:
        dataset._version = Version(saved, saved)
