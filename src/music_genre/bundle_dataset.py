"""``{model}.model``: one versioned catalog dataset for every model family.

Saves a :class:`music_genre.models.bundle.ModelBundle` (the model + its serving contract) as a
folder ``<filepath>/<version>/<name>/`` holding ``contract.json`` and ``model.joblib`` (scikit-
learn models, transfer heads) or ``model.keras`` (Keras models, loaded with ``safe_mode``); a bare
model (e.g. ``transfer_finetune.model``) is saved the same way and loads back bare. Keras and
TensorFlow are imported only when a Keras model is loaded or saved.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractVersionedDataset
from kedro.io.core import Version

from music_genre.models import bundle


class ModelBundleDataset(AbstractVersionedDataset[Any, Any]):
    def __init__(self, *, filepath: str, version: Version | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self.metadata = metadata

    def load(self) -> Any:
        return bundle.load(self._get_load_path())

    def save(self, data: Any) -> None:
        bundle.save(data, self._get_save_path())

    def contract(self) -> dict[str, Any]:
        """The contract of the version :meth:`load` would read, without loading the model."""
        return bundle.read_contract(self._get_load_path())

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / bundle.CONTRACT_FILE).is_file()
        except Exception:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
