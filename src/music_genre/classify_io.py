"""What the ``classify`` pipeline reads besides audio: the trained models, loaded on demand through
the project's catalog.

:func:`load_model` turns ``<name>.model`` + ``<name>.metrics`` (+ ``musicnn_network`` for
``transfer``) into the :class:`music_genre.inference.LoadedModel` the prediction service builds
from the same catalog entries, so a folder classified here gets the answers the API would give.
:class:`TrainedModels` is what the pipeline's ``classify.models`` input holds: the project hook
(:meth:`music_genre.hooks.ProjectHooks.before_pipeline_run`) fills it with the run's catalog, and
nothing is loaded until the node asks for the one model it uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from music_genre import inference

logger = logging.getLogger(__name__)


def load_model(catalog, params: Mapping[str, Any], name: str) -> inference.LoadedModel:
    """The latest version of ``<name>.model`` (pinned, so the reported version is the one loaded)
    with the metrics of the same run; :class:`LookupError` when it was never trained."""
    dataset = catalog.get(f"{name}.model")
    if dataset is None:
        raise LookupError(f"the catalog has no dataset '{name}.model'")
    try:
        version = dataset.resolve_load_version() if hasattr(dataset, "resolve_load_version") \
            else None
        path = dataset._get_load_path()
    except Exception as exc:  # VersionNotFoundError and friends
        raise LookupError(f"no trained version of '{name}.model' ({exc})") from None
    if not Path(path).exists():
        raise LookupError(f"no trained '{name}.model' at {path}")
    model = catalog.load(f"{name}.model", version=version)
    metrics, metrics_version = _metrics(catalog, name, version)
    extras: dict[str, Any] = {}
    if name == "transfer":
        from music_genre.transfer.serving import TransferService

        extras["transfer_service"] = TransferService(
            network=catalog.load("musicnn_network"), head=model, genres=params["genres"],
            musicnn=params.get("musicnn") or {})
    return inference.LoadedModel(name, model, version, metrics, metrics_version, extras)


def _metrics(catalog, name: str, version: str | None) -> tuple[dict[str, Any], str | None]:
    """The metrics of run ``version``, else the latest ones, else none."""
    for wanted in (version, None):
        try:
            metrics = catalog.load(f"{name}.metrics", version=wanted)
            return metrics, wanted or catalog.get(f"{name}.metrics").resolve_load_version()
        except Exception:
            continue
    return {}, None


def trained_version(catalog, name: str) -> str | None:
    """The version ``<name>.model`` would load now, or None when it was never trained."""
    dataset = catalog.get(f"{name}.model")
    if dataset is None:
        return None
    try:
        path = Path(dataset._get_load_path())
        version = dataset.resolve_load_version() if hasattr(dataset, "resolve_load_version") \
            else None
    except Exception:
        return None
    return (version or "unversioned") if path.exists() else None


class TrainedModels:
    """The trained models of a catalog, by name; a model is loaded when asked for."""

    def __init__(self, catalog, params: Mapping[str, Any],
                 names: Sequence[str] = tuple(inference.MODEL_NAMES)) -> None:
        self._catalog = catalog
        self._params = params
        self.names = list(names)

    def versions(self) -> dict[str, str]:
        """Trained model name → the version that would be loaded."""
        found = {n: trained_version(self._catalog, n) for n in self.names}
        return {n: v for n, v in found.items() if v}

    def accuracies(self) -> dict[str, float | None]:
        """Trained model name → test accuracy of its run (None when its metrics are missing)."""
        result = {}
        for name, version in self.versions().items():
            metrics, _ = _metrics(self._catalog, name, version)
            value = metrics.get("accuracy")
            result[name] = float(value) if value is not None else None
        return result

    def load(self, name: str | None = None) -> inference.LoadedModel:
        """Model ``name``, or the service's default (:func:`inference.choose_default_model`)."""
        if name is None:
            name = inference.choose_default_model(self.accuracies())
            if name is None:
                raise LookupError(
                    "no trained model: train one first (`kedro run`, or `kedro run --pipeline "
                    "rf`), or check --env: models are looked up in that environment's data")
        elif name not in self.names:
            raise ValueError(f"params:classify.model is '{name}'; known models: {self.names}")
        try:
            return load_model(self._catalog, self._params, name)
        except LookupError as exc:
            raise LookupError(f"model '{name}' has not been trained yet ({exc}); train it with "
                              f"`kedro run --pipeline {name}`") from None


__all__ = ["TrainedModels", "load_model", "trained_version"]
