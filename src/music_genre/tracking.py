"""Experiment tracking: what every run logs to MLflow and (opt-in) ClearML, as Kedro hooks.

* **MLflow** (on by default, through kedro-mlflow, ``conf/base/mlflow.yml``): kedro-mlflow opens
  one run per ``kedro run`` and logs every ``params:*`` input of every node. :class:`MlflowHook`
  adds the rest while that run is open: the scalar metrics of ``<model>.metrics``, the per-epoch
  curves of ``<model>.train_info``, the tuning summary of ``<model>.best_params``, and every saved
  file of the ``model_input``, ``models``, ``model_output`` and ``reporting`` layers as
  artifacts. Tuning trials are nested runs, logged by :mod:`music_genre.tuning`. Switched off per pipeline by
  kedro-mlflow's ``tracking.disable_tracking.pipelines``: then no run is open and nothing is logged.
* **ClearML** (opt-in: ``enabled: true`` in ``conf/base/clearml.yml`` or
  ``MUSIC_GENRE_CLEARML=1``): :class:`ClearMLHook` logs the same parameters, metrics, plots and
  files to a ClearML task per run. ``offline: true`` (the default) needs no account or server:
  the session is written under ClearML's cache folder (``CLEARML_CACHE_DIR``) and can be imported
  into a server later (``Task.import_offline_session``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
from numbers import Number
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

# Saved datasets of these kedro-viz layers are logged as files (split, best parameters, models,
# predictions, plots, reports); features and caches are not.
ARTIFACT_LAYERS = {"model_input", "models", "model_output", "reporting"}
CLEARML_ENV = "MUSIC_GENRE_CLEARML"


# --------------------------------------------------------------------------- import order
#: TensorFlow's C++ start-up notices, written to file descriptor 2 while it is imported, before
#: absl logging is initialised (so TF_CPP_MIN_LOG_LEVEL cannot silence them): the oneDNN notice
#: (printed whenever oneDNN is on, TensorFlow's x86 default) and absl's remark that such early
#: messages go to stderr. Anything else TensorFlow writes while importing is passed on.
TENSORFLOW_IMPORT_NOTICES = ("All log messages before absl::InitializeLog() is called",
                             "oneDNN custom operations are on")


@contextlib.contextmanager
def _native_stderr_without(notices: tuple[str, ...]):
    """Capture file descriptor 2 (C/C++ writes as well as Python's) while the block runs, then
    write back every line that is not one of ``notices``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not any(n.encode() in line for n in notices)]
            if kept:
                os.write(2, b"".join(kept))


def import_tensorflow_first() -> None:
    """Import TensorFlow now, at top level, before anything imports Keras, and without its C++
    start-up notices.

    ``mlflow.autolog()`` (kedro-mlflow calls it, with ``disable=True``, on every run) registers a
    hook that runs when ``tensorflow`` finishes importing and imports Keras. When the project's
    first ``import keras`` comes first instead (Keras' TensorFlow backend then imports
    ``tensorflow`` half-way through Keras' own import), that hook runs inside Keras' import and
    fails with "cannot import name 'cast' from partially initialized module 'keras.src.backend'"
    on every run. Imported first, TensorFlow finishes, the hook imports Keras whole, and the
    project's ``import keras`` finds it. Called by :class:`music_genre.hooks.ProjectHooks` before
    a run that loads, trains or saves a Keras model only (runs without a network never pay for
    TensorFlow). A no-op under another Keras backend or when TensorFlow is already imported.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        with _native_stderr_without(TENSORFLOW_IMPORT_NOTICES):
            import tensorflow  # noqa: F401
    except ImportError:  # a Keras backend without TensorFlow: nothing to order
        return


# --------------------------------------------------------------------------- what is logged
def _is_number(value) -> bool:
    return (isinstance(value, Number) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def scalars(dataset_name: str, data) -> list[tuple[str, str, float, int]]:
    """The scalars a saved dataset carries: (group, name, value, step) tuples.

    ``group`` is the model namespace (``mlp``, ``mlp_tuned``); curves have one step per epoch.
    """
    group, _, leaf = dataset_name.rpartition(".")
    if not isinstance(data, dict) or not group:
        return []
    out: list[tuple[str, str, float, int]] = []
    if leaf == "metrics":
        out += [(group, k, float(v), 0) for k, v in data.items() if _is_number(v)]
    elif leaf == "train_info":
        for key, values in (data.get("history") or {}).items():
            out += [(group, key, float(v), step) for step, v in enumerate(values)
                    if _is_number(v)]
    elif leaf == "best_params":
        if _is_number(data.get("best_value")):
            out.append((group, f"tuning.best_{data.get('metric', 'value')}",
                        float(data["best_value"]), 0))
        out += [(group, f"tuning.trials_{k}", float(v), 0)
                for k, v in (data.get("n_trials") or {}).items() if _is_number(v)]
    return out


def saved_path(dataset) -> Path | None:
    """The file a dataset has just written (this run's version for versioned datasets)."""
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None:
        return None
    if getattr(dataset, "_version", None) is not None:
        try:
            return Path(str(dataset._get_versioned_path(dataset.resolve_save_version())))
        except Exception:  # not a versioned dataset after all
            return None
    return Path(str(filepath))


def artifact_path(catalog, dataset_name: str) -> Path | None:
    """The saved file (or folder: a model bundle) of ``dataset_name`` when it belongs to a layer
    worth keeping."""
    if catalog is None:
        return None
    try:
        dataset = catalog.get(dataset_name)
    except Exception:
        return None
    layer = ((getattr(dataset, "metadata", None) or {}).get("kedro-viz") or {}).get("layer")
    if layer not in ARTIFACT_LAYERS:
        return None
    path = saved_path(dataset)
    return path if path is not None and path.exists() else None


def _flatten(prefix: str, value, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out


# --------------------------------------------------------------------------- MLflow
class MlflowHook:
    """Metrics, curves and files of every run into the MLflow run kedro-mlflow has open."""

    def __init__(self) -> None:
        self._catalog = None

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:  # noqa: ARG002
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is None:  # tracking disabled for this pipeline
            return
        for group, name, value, step in scalars(dataset_name, data):
            mlflow.log_metric(f"{group}.{name}", value, step=step)
        path = artifact_path(self._catalog, dataset_name)
        if path is not None:
            folder = dataset_name.rpartition(".")[0] or None
            if path.is_dir():  # a model bundle: its files under <namespace>/<name>.bundle/
                mlflow.log_artifacts(str(path), artifact_path="/".join(
                    p for p in (folder, path.name) if p))
            else:
                mlflow.log_artifact(str(path), artifact_path=folder)


# --------------------------------------------------------------------------- ClearML
def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


class ClearMLHook:
    """The same parameters, metrics, plots and files to a ClearML task per ``kedro run``.

    Off unless ``conf/<env>/clearml.yml`` says ``enabled: true`` or ``MUSIC_GENRE_CLEARML=1``
    (``MUSIC_GENRE_CLEARML=0`` turns it off whatever the configuration says).
    """

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.task = None
        self.session_folder: Path | None = None
        self._catalog = None
        self._logged_params: set[str] = set()

    @property
    def enabled(self) -> bool:
        env = os.environ.get(CLEARML_ENV)
        return _truthy(env) if env is not None else bool(self.config.get("enabled", False))

    @hook_impl
    def after_context_created(self, context) -> None:
        from kedro.config import MissingConfigException

        loader = context.config_loader
        loader.config_patterns.setdefault("clearml", ["clearml*", "clearml*/**"])
        try:
            self.config = dict(loader["clearml"])
        except (MissingConfigException, KeyError):
            self.config = {}

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:  # noqa: ARG002
        if not self.enabled:
            return
        try:
            from clearml import Task
        except ImportError as exc:
            raise ImportError("ClearML tracking is on (conf clearml.yml or MUSIC_GENRE_CLEARML) "
                              "but clearml is not installed: pip install -e '.[clearml]'") from exc
        offline = self.config.get("offline", True)
        if os.environ.get("CLEARML_OFFLINE_MODE") is not None:
            offline = _truthy(os.environ["CLEARML_OFFLINE_MODE"])
        Task.set_offline(bool(offline))
        # ClearML reports from a forked subprocess by default on Linux; forked after TensorFlow
        # has started its threads, that subprocess can hang the run's end for minutes.
        from clearml.backend_interface.task.task import Task as _BackendTask

        _BackendTask._report_subprocess_enabled = bool(self.config.get("report_subprocess",
                                                                       False))
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")
                                                      or "__default__"]
        names = [names] if isinstance(names, str) else names
        self.task = Task.init(
            project_name=self.config.get("project_name", "music_genre"),
            task_name=self.config.get("task_name") or "+".join(names),
            tags=list(self.config.get("tags") or []) + [f"env:{run_params.get('env')}"],
            reuse_last_task_id=False,
            # everything is logged explicitly below: no framework patching, no stdout capture
            auto_connect_frameworks=False, auto_connect_arg_parser=False,
            auto_connect_streams=False, auto_resource_monitoring=False)
        self._logged_params = set()
        if offline:
            self.session_folder = Path(self.task.get_offline_mode_folder())

    @hook_impl
    def before_node_run(self, node, catalog, inputs: dict[str, Any], is_async: bool) -> None:  # noqa: ARG002
        if self.task is None:
            return
        flat: dict[str, Any] = {}
        for name, value in inputs.items():
            if name.startswith("params:") and name not in self._logged_params:
                self._logged_params.add(name)
                _flatten(name.removeprefix("params:"), value, flat)
        if flat:
            self.task.set_parameters({f"params/{k}": v for k, v in flat.items()})

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:  # noqa: ARG002
        if self.task is None:
            return
        report = self.task.get_logger()
        for group, name, value, step in scalars(dataset_name, data):
            report.report_scalar(title=group, series=name, value=value, iteration=step)
        group, _, leaf = dataset_name.rpartition(".")
        if leaf == "trials" and hasattr(data, "columns") and "value" in data.columns:
            for number, value in zip(data["number"], data["value"]):
                if _is_number(value):
                    report.report_scalar(title=f"{group}.tuning", series="trial value",
                                         value=float(value), iteration=int(number))
        if hasattr(data, "savefig"):  # a matplotlib figure: a plot in the ClearML UI
            report.report_matplotlib_figure(title=group or dataset_name, series=leaf,
                                            figure=data, iteration=0, report_image=True)
            return
        path = artifact_path(self._catalog, dataset_name)
        if path is not None:
            self.task.upload_artifact(name=dataset_name, artifact_object=str(path))

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:  # noqa: ARG002
        self._close()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:  # noqa: ARG002
        if self.task is not None:
            try:
                self.task.mark_failed(status_reason=str(error)[:200])
            except Exception:  # the run's own error matters more than ClearML's status
                logger.warning("ClearML: could not mark the task failed", exc_info=True)
        self._close()

    def _close(self) -> None:
        if self.task is None:
            return
        self.task.close()
        if self.session_folder is not None:
            logger.info("ClearML offline session: %s (import it into a server with "
                        "Task.import_offline_session)", self.session_folder)
        self.task = None
