"""Trained models loaded through the project's catalog: the prediction service's loader, and the
``classify`` pipeline's models, loaded on demand.

:func:`load_model` turns ``<name>.model`` + ``<name>.metrics`` (+ ``musicnn_network`` for
``transfer``, + the members for ``ensemble``) into the :class:`music_genre.inference.LoadedModel`
the prediction service builds from the same catalog entries (``inference.loaded_model`` /
``inference.ensemble_model``), so a folder classified here gets the answers the API would give.
:class:`TrainedModels` is what the pipeline's ``classify.models`` input holds: the project hook
(:meth:`music_genre.hooks.ProjectHooks.before_pipeline_run`) fills it with the run's catalog, and
nothing is loaded until the node asks for the one model it uses; without a name, the model is the
service's default (:func:`music_genre.inference.choose_default_model`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from music_genre import inference
from music_genre.models import bundle as bundles
from music_genre.models import families

logger = logging.getLogger(__name__)


def trained_version(catalog, name: str) -> str | None:
    """The version ``<name>.model`` would load now, or None when it was never trained."""
    try:
        dataset = catalog.get(f"{name}.model")
        if dataset is None:
            return None
        path = Path(dataset._get_load_path())
        version = dataset.resolve_load_version() if hasattr(dataset, "resolve_load_version") \
            else None
    except Exception:
        return None
    return (version or "unversioned") if path.exists() else None


def _metrics(catalog, name: str, version: str | None) -> tuple[dict[str, Any], str | None]:
    """The metrics of run ``version``, else the latest ones, else none."""
    for wanted in (version, None):
        try:
            metrics = catalog.load(f"{name}.metrics", version=wanted)
            return metrics, wanted or catalog.get(f"{name}.metrics").resolve_load_version()
        except Exception:
            continue
    return {}, None


def legacy_model(catalog, name: str) -> Path | None:
    """A ``<name>.pkl`` / ``<name>.keras`` saved before models were bundles, beside where the
    bundle would be (it does not carry its input contract: it is not served)."""
    try:
        folder = Path(catalog.get(f"{name}.model")._filepath).parent
    except Exception:
        return None
    for suffix in (".pkl", ".keras"):
        if (folder / f"{name}{suffix}").exists():
            return folder / f"{name}{suffix}"
    return None


def _version_of_bundle(catalog, name: str, bundle_id: str) -> str | None:
    """The saved version of ``<name>.model`` whose contract has ``bundle_id`` (None: gone)."""
    try:
        folder = Path(catalog.get(f"{name}.model")._filepath)
    except Exception:
        return None
    if not folder.is_dir():
        return None
    for version in sorted((p.name for p in folder.iterdir() if p.is_dir()), reverse=True):
        try:
            if bundles.read_contract(folder / version / folder.name).get("bundle_id") \
                    == bundle_id:
                return version
        except (OSError, ValueError):
            continue
    return None


def load_model(catalog, params: Mapping[str, Any], name: str,
               members: Mapping[str, inference.LoadedModel] | None = None,
               env: str | None = None, version: str | None = None) -> inference.LoadedModel:
    """The latest version of ``<name>.model`` (pinned, so the reported version is the one loaded)
    with the metrics of the same run, as its bundle's contract says to serve it (not ``params``:
    only the ensemble's members come from the catalog by name); for ``ensemble`` its bundle over
    its members (``members``: models already loaded, as the service has them; else each is
    loaded here). :class:`LookupError` when it (or a member) was never trained;
    :class:`music_genre.models.bundle.IncompatibleBundle` when its bundle cannot be served as
    trained (the message names the difference and the retrain command, with ``env``). The
    prediction service and the classify pipeline both load through this function. ``version``:
    that saved version instead of the latest (an ensemble's pinned member)."""
    version = version or trained_version(catalog, name)
    if version is None:
        legacy = legacy_model(catalog, name)
        if legacy is not None:
            raise bundles.IncompatibleBundle(
                f"model '{name}' was saved before models carried their serving contract "
                f"({legacy}); retrain it: `{bundles.retrain_command(name, env)}`")
        raise LookupError(f"no trained version of '{name}.model'")
    model = catalog.load(f"{name}.model", version=None if version == "unversioned" else version)
    metrics, metrics_version = _metrics(catalog, name, version)
    if isinstance(model, Mapping) and "members" in model:  # the ensemble's bundle (JSON)
        members = dict(members or {})
        for m, w in model["members"].items():
            pinned = (model.get("member_bundles") or {}).get(m)
            if float(w) <= 0 or (m in members and pinned in (
                    None, members[m].contract.get("bundle_id"))):
                continue
            # not loaded, or retrained since the ensemble was built: its pinned training
            at = _version_of_bundle(catalog, m, pinned) if pinned else None
            if at is not None or m not in members:
                members[m] = load_model(catalog, params, m, env=env, version=at)
        return inference.ensemble_model(model, members, metrics, version)
    needs_network = (isinstance(model, bundles.ModelBundle)
                     and model.contract.get("family") == families.EMBEDDING_HEAD.name)
    network = catalog.load("musicnn_network") if needs_network else None
    return inference.loaded_model(name, model, metrics, network, version, metrics_version, env)


class TrainedModels:
    """The trained models of a catalog, by name; a model is loaded when asked for."""

    def __init__(self, catalog, params: Mapping[str, Any],
                 names: Sequence[str] = tuple(inference.MODEL_NAMES),
                 env: str | None = None) -> None:
        self._catalog = catalog
        self._params = params
        self._env = env
        self.names = list(names)

    def versions(self) -> dict[str, str]:
        """Trained model name → the version that would be loaded."""
        found = {n: trained_version(self._catalog, n) for n in self.names}
        return {n: v for n, v in found.items() if v}

    def default(self) -> tuple[str | None, str]:
        """The service's default among the trained models, and what chose it."""
        versions = self.versions()
        try:
            selection = self._catalog.load("model_selection")
        except Exception:  # not ranked yet
            selection = None
        accuracies = {n: _metrics(self._catalog, n, v)[0].get("accuracy")
                      for n, v in versions.items()}
        return inference.choose_default_model(list(versions), selection, accuracies)

    def load(self, name: str | None = None) -> inference.LoadedModel:
        """Model ``name``, or the service's default (:meth:`default`)."""
        if name is None:
            name, chosen_by = self.default()
            if name is None:
                raise LookupError(
                    "no trained model: train one first (`kedro run`, or `kedro run --pipeline "
                    "rf`), or check --env: models are looked up in that environment's data")
            logger.info("classify: model '%s' (the default, chosen by %s)", name, chosen_by)
        elif name not in self.names:
            raise ValueError(f"params:classify.model is '{name}'; known models: {self.names}")
        try:
            return load_model(self._catalog, self._params, name, env=self._env)
        except LookupError as exc:
            raise LookupError(f"model '{name}' cannot be used: {exc}; train it with "
                              f"`kedro run --pipeline {name}`") from None


__all__ = ["TrainedModels", "legacy_model", "load_model", "trained_version"]
