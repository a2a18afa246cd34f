"""A versioned ``.keras`` model dataset that imports TensorFlow only when a model is loaded or
saved.

kedro-datasets' ``TensorFlowModelDataset`` imports TensorFlow at module import, and plugins such
as kedro-mlflow instantiate every catalog entry at start-up: every ``kedro run`` (even plain data
processing) paid ~5 s and ~500 MB for it. This one also registers the project's custom layers
before loading, so ``.keras`` files load under Keras' ``safe_mode=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractVersionedDataset
from kedro.io.core import Version


class KerasModelDataset(AbstractVersionedDataset[Any, Any]):
    """A Keras 3 model saved as a single ``.keras`` file (local filesystem), versioned."""

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._load_args = {"safe_mode": True, **(load_args or {})}
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def load(self):
        import keras

        import music_genre.models.specaugment  # noqa: F401  (registers SpecAugment)

        return keras.saving.load_model(str(self._get_load_path()), **self._load_args)

    def save(self, model) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        # write next to the target and rename: a crash never leaves half a model file
        fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent)
        os.close(fd)
        try:
            model.save(tmp, **self._save_args)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except Exception:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
