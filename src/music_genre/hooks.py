"""Project hooks: say where every artifact was written."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

logger = logging.getLogger(__name__)


class ProjectHooks:
    def __init__(self) -> None:
        self._catalog = None

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
        try:
            path = dataset._get_save_path()  # versioned datasets: the path of this run's version
        except Exception:
            described = dataset._describe()
            path = described.get("filepath") or described.get("path")
        if path:
            logger.info("Saved '%s' to %s", dataset_name, path)
