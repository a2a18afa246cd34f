"""Hyper-parameter tuning with Optuna: search spaces from YAML, the objective, pruning, studies.

Plain Python (no Kedro): the ``tune_<model>`` pipelines (``pipelines/tuning``) wire it into
Kedro nodes; tests call everything directly.

* **Search space** (``params:tuning.<model>.space``): a mapping from a dotted path inside the
  model's parameter block to a distribution, so changing the space needs no code change::

      optimizer.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}   # float (log scale)
      batch_size: {choices: [16, 32, 64]}                                # categorical
      dropout: {low: 0.1, high: 0.6}                                     # float
      random_forest.max_depth: {low: 5, high: 40}                        # int (int bounds)
      hidden_units: {length: {low: 1, high: 3},                          # a list: its length,
                     item: {choices: [64, 128, 256, 512]}}               # then each element

  A trial's values are written over the model's base block (``params:<model>``) and over
  ``fixed`` (settings every trial shares, e.g. fewer epochs), so a trial is a full parameter
  block that :func:`music_genre.models.training.fit` trains as it is.
* **Objective**: accuracy (maximised) or log loss (minimised) on the split's *validation*
  tracks. The test split is never read while tuning.
* **Pruning**: Keras models report the monitored validation metric after every epoch
  (:func:`pruning_callback`); a :class:`optuna.pruners.MedianPruner` stops trials that fall
  below the median of earlier trials at the same epoch.
* **Storage**: a real database (``sqlite:///data/optuna/studies.db`` by default, any SQLAlchemy
  URL such as PostgreSQL, or ``journal:<file>`` for Optuna's journal file), so a study survives
  interruptions and several processes or machines can work on one study at once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

logger = logging.getLogger(__name__)

METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}


# --------------------------------------------------------------------------- search space
class SearchSpaceError(ValueError):
    """A search-space entry that cannot be turned into an Optuna distribution."""


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SearchSpaceError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError as exc:
        raise SearchSpaceError(f"{where}: expected a number, got {value!r}") from exc


def _suggest_one(trial: optuna.Trial, name: str, spec: Any, where: str):
    """One value for ``name`` from ``spec`` (see the module docstring for the forms)."""
    if not isinstance(spec, dict):
        raise SearchSpaceError(f"{where}: expected a mapping such as {{low: 0.1, high: 0.5}} "
                               f"or {{choices: [...]}}, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    if "length" in spec or kind == "list":
        return _suggest_list(trial, name, spec, where)
    if "choices" in spec or kind == "categorical":
        choices = list(spec.get("choices") or [])
        if not choices:
            raise SearchSpaceError(f"{where}: 'choices' must be a non-empty list")
        return trial.suggest_categorical(name, choices)
    if "low" not in spec or "high" not in spec:
        raise SearchSpaceError(f"{where}: give 'low' and 'high' (a range) or 'choices' "
                               f"(a list); got keys {sorted(spec)}")
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown:
        raise SearchSpaceError(f"{where}: unknown keys {sorted(unknown)} "
                               "(allowed: type, low, high, log, step, choices, length, item)")
    low, high = spec["low"], spec["high"]
    if kind is None:  # integer bounds give an integer parameter, any float bound a float one
        kind = "int" if all(isinstance(v, int) and not isinstance(v, bool)
                            for v in (low, high)) else "float"
    log = bool(spec.get("log", False))
    low_f, high_f = _number(low, f"{where}.low"), _number(high, f"{where}.high")
    if not low_f < high_f:
        raise SearchSpaceError(f"{where}: low ({low}) must be below high ({high})")
    if log and low_f <= 0:
        raise SearchSpaceError(f"{where}: a log-scale range needs low > 0, got {low}")
    if kind == "int":
        step = int(spec.get("step", 1))
        return trial.suggest_int(name, int(low_f), int(high_f), step=step, log=log)
    if kind == "float":
        step = spec.get("step")
        return trial.suggest_float(name, low_f, high_f, log=log,
                                   step=None if step is None else float(step))
    raise SearchSpaceError(f"{where}: unknown type '{kind}' (int, float, categorical or list)")


def _suggest_list(trial: optuna.Trial, name: str, spec: dict, where: str) -> list:
    length_spec, item = spec.get("length"), spec.get("item")
    if item is None:
        raise SearchSpaceError(f"{where}: a list needs 'item', the distribution of each element")
    if isinstance(length_spec, int):
        length = length_spec
    else:
        length = _suggest_one(trial, f"{name}.length", length_spec, f"{where}.length")
    if int(length) < 1:
        raise SearchSpaceError(f"{where}: a list needs at least one element")
    return [_suggest_one(trial, f"{name}.{i}", item, f"{where}.item")
            for i in range(int(length))]


def _set_path(params: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = params
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise SearchSpaceError(f"search-space key '{dotted}': '{key}' is {child!r} in the "
                                   "model's parameters, not a mapping")
        node = child
    node[keys[-1]] = value


def merge_params(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each override's dotted keys (or nested mappings) set."""
    out = copy.deepcopy(dict(base))
    for override in overrides:
        for key, value in (override or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_params(out[key], value)
            else:
                _set_path(out, key, copy.deepcopy(value))
    return out


def suggest_params(trial: optuna.Trial, base: dict[str, Any], space: dict[str, Any],
                   fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """A full model parameter block for ``trial``: ``base`` ← ``fixed`` ← sampled ``space``."""
    if not space:
        raise SearchSpaceError("the search space is empty: give at least one parameter under "
                               "params:tuning.<model>.space")
    values = {key: _suggest_one(trial, key, spec, f"space.{key}")
              for key, spec in space.items()}
    return merge_params(base, fixed or {}, values)


def params_from_values(values: dict[str, Any], base: dict[str, Any], space: dict[str, Any],
                       fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameter block a trial with Optuna values ``values`` trained (e.g. ``best_params``)."""
    return suggest_params(optuna.trial.FixedTrial(values), base, space, fixed)


def values_of(params: dict[str, Any], space: dict[str, Any]) -> dict[str, Any] | None:
    """The Optuna values that give ``params`` in ``space``, or None when it lies outside it.

    Used to enqueue the configured block as a study's first trial, so the study always
    measures the untuned parameters on the same validation tracks.
    """
    def get(dotted):
        node = params
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(dotted)
            node = node[key]
        return node

    def inside(spec, value) -> bool:
        if "choices" in spec:
            return value in spec["choices"]
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and float(spec["low"]) <= value <= float(spec["high"]))

    values: dict[str, Any] = {}
    try:
        for key, spec in space.items():
            value = get(key)
            if "length" in spec:
                length = spec["length"]
                ok = isinstance(value, list) and (
                    len(value) == length if isinstance(length, int) else inside(length, len(value)))
                if not ok or not all(inside(spec["item"], v) for v in value):
                    return None
                if not isinstance(length, int):
                    values[f"{key}.length"] = len(value)
                values.update({f"{key}.{i}": v for i, v in enumerate(value)})
            elif inside(spec, value):
                values[key] = value
            else:
                return None
    except KeyError:
        return None
    return values


# --------------------------------------------------------------------------- pruning
def pruning_callback(trial: optuna.Trial, monitor: str):
    """A Keras callback: report ``monitor`` to ``trial`` each epoch, stop training when pruned.

    Training stops cleanly (``stop_training``) instead of raising inside Keras; the objective
    raises :class:`optuna.TrialPruned` once ``fit`` has returned (see ``pruned_at_epoch``).
    """
    import keras

    class OptunaPruning(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.pruned_at_epoch: int | None = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None or not math.isfinite(float(value)):
                return  # nothing to compare at this epoch
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                self.pruned_at_epoch = epoch
                self.model.stop_training = True

    return OptunaPruning()


# --------------------------------------------------------------------------- objective
def validation_scores(y_val: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and log loss of class probabilities ``proba`` against ``y_val``."""
    eps = 1e-7
    p_true = np.clip(proba[np.arange(len(y_val)), y_val], eps, 1.0)
    return {"val_accuracy": float(np.mean(proba.argmax(axis=1) == y_val)),
            "val_loss": float(-np.mean(np.log(p_true)))}


def make_objective(base: dict[str, Any], space: dict[str, Any], train_input, y_train,
                   val_input, y_val, n_classes: int, seed: int, metric: str = "val_accuracy",
                   fixed: dict[str, Any] | None = None, log_to_mlflow: bool = True
                   ) -> Callable[[optuna.Trial], float]:
    """The function Optuna minimises/maximises: train on train, score ``metric`` on val.

    Each trial stores its full parameter block (user attribute ``params``) so the best one can
    be trained again exactly; with an active MLflow run each trial is a nested MLflow run.
    """
    if metric not in METRICS:
        raise ValueError(f"params:tuning.metric is '{metric}'; choose one of {sorted(METRICS)}")
    from music_genre.models import families, training

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, base, space, fixed)
        trial.set_user_attr("params", params)
        with _mlflow_trial_run(trial, log_to_mlflow) as mlflow_run:
            callbacks = []
            if families.by_kind(params["kind"]).keras:
                callbacks.append(pruning_callback(trial, metric))
            try:
                model, info = training.fit(params, train_input, y_train, val_input, y_val,
                                           n_classes=n_classes, seed=seed, callbacks=callbacks)
                proba = training.predict_proba(model, val_input, n_classes,
                                               int(params.get("batch_size", 32)))
            finally:
                if families.by_kind(params["kind"]).keras:
                    import keras

                    keras.backend.clear_session()  # free the graph before the next trial
            scores = validation_scores(np.asarray(y_val), proba)
            pruned_at = callbacks[0].pruned_at_epoch if callbacks else None
            for key, value in scores.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("epochs_run", info.get("epochs_run"))
            trial.set_user_attr("train_seconds", round(info["train_seconds"], 2))
            if mlflow_run is not None:
                _log_trial(mlflow_run, trial, params, scores, info, pruned_at)
        # outside the MLflow run: a pruned trial's run ends FINISHED (tag optuna.state PRUNED)
        if pruned_at is not None:
            logger.info("Trial %d pruned after epoch %d", trial.number, pruned_at + 1)
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at + 1}")
        return scores[metric]

    return objective


@contextlib.contextmanager
def _mlflow_trial_run(trial: optuna.Trial, enabled: bool):
    """A nested MLflow run for the trial when a run is active (the study's run), else nothing."""
    mlflow = _active_mlflow() if enabled else None
    if mlflow is None:
        yield None
        return
    with mlflow.start_run(run_name=f"trial {trial.number}", nested=True) as run:
        mlflow.set_tags({"optuna.study": trial.study.study_name,
                         "optuna.trial": trial.number})
        yield run


def _active_mlflow():
    try:
        import mlflow
    except ImportError:  # tracking is optional
        return None
    return mlflow if mlflow.active_run() is not None else None


def _log_trial(run, trial, params, scores, info, pruned_at) -> None:
    import mlflow

    mlflow.log_params({k: str(v)[:500] for k, v in trial.params.items()})
    mlflow.log_metrics(scores)
    for key, values in info.get("history", {}).items():
        for step, value in enumerate(values):
            if math.isfinite(value):
                mlflow.log_metric(key, value, step=step)
    mlflow.set_tag("optuna.state", "PRUNED" if pruned_at is not None else "COMPLETE")
    mlflow.set_tag("model.kind", params["kind"])


# --------------------------------------------------------------------------- studies
def open_storage(url: str, heartbeat_s: int | None = 60):
    """An Optuna storage for ``url``: an SQLAlchemy URL or ``journal:<file>``.

    SQLite files are created with their folder; several processes may share one (a generous
    lock timeout lets them queue rather than fail). With a heartbeat, the trials of a process
    that died (Ctrl-C, lost machine) are marked failed and retried when a worker next runs.
    """
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 120}}
    heartbeat = {}
    if heartbeat_s:
        with _quiet_optuna_warnings():
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
        heartbeat = {"heartbeat_interval": int(heartbeat_s), "grace_period": 2 * int(heartbeat_s),
                     "heartbeat_stale_trial_callback": retry}
    for attempt in range(5):
        try:
            with _quiet_optuna_warnings():  # heartbeats are "experimental" since Optuna 2.8
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except Exception as exc:  # two processes creating the tables at the same moment
            racing = ("already exists", "locked", "UNIQUE constraint failed")
            if attempt == 4 or not any(text in str(exc) for text in racing):
                raise
            time.sleep(0.5 * (attempt + 1))


def open_study(study_name: str, storage: str, metric: str = "val_accuracy", seed: int = 42,
               sampler: dict[str, Any] | None = None, pruner: dict[str, Any] | None = None,
               heartbeat_s: int | None = 60, worker: int = 0) -> optuna.Study:
    """Create the study, or load it when it exists (a resumed run continues it).

    The TPE seed is offset by the trials already in the study and by ``worker``: a resumed run
    or a second worker explores new points instead of replaying the first run's random ones,
    while a fresh study with a given seed is reproducible.
    """
    if metric not in METRICS:
        raise ValueError(f"params:tuning.metric is '{metric}'; choose one of {sorted(METRICS)}")
    pruner = pruner or {}
    study = optuna.create_study(
        storage=open_storage(storage, heartbeat_s), study_name=study_name,
        direction=METRICS[metric], load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=int(pruner.get("n_startup_trials", 5)),
            n_warmup_steps=int(pruner.get("n_warmup_steps", 5)),
            interval_steps=int(pruner.get("interval_steps", 1))))
    if study.direction.name.lower() != METRICS[metric]:
        raise ValueError(f"study '{study_name}' in {redact(storage)} was created to "
                         f"{study.direction.name.lower()}, but params:tuning.metric '{metric}' "
                         "needs the other direction: use another study_name")
    sampler = sampler or {}
    offset = len(study.trials) + 1000 * int(worker)
    study.sampler = optuna.samplers.TPESampler(
        seed=int(sampler.get("seed", seed)) + offset,
        n_startup_trials=int(sampler.get("n_startup_trials", 10)),
        multivariate=bool(sampler.get("multivariate", True)),
        constant_liar=True)  # parallel workers avoid sampling where another is running
    return study


def run_study(study: optuna.Study, objective, n_trials: int | None,
              timeout_s: float | None = None, log_to_mlflow: bool = True) -> optuna.Study:
    """Add up to ``n_trials`` trials (and stop starting new ones after ``timeout_s``).

    With an active MLflow run the study gets one nested run, and each trial a run under it.
    """
    mlflow = _active_mlflow() if log_to_mlflow else None
    context = (mlflow.start_run(run_name=f"study {study.study_name}", nested=True)
               if mlflow else contextlib.nullcontext())
    waiting = (optuna.trial.TrialState.WAITING,)  # enqueued trials count for this run
    before = len(study.get_trials(deepcopy=False)) - len(study.get_trials(False, states=waiting))
    with context:
        if mlflow:
            mlflow.set_tags({"optuna.study": study.study_name,
                             "optuna.direction": study.direction.name.lower()})
        study.optimize(objective, n_trials=None if n_trials is None else int(n_trials),
                       timeout=None if timeout_s is None else float(timeout_s),
                       gc_after_trial=True)
        if mlflow:
            counts = trial_counts(study)
            mlflow.log_metrics({f"trials_{k}": v for k, v in counts.items()})
            if counts["complete"]:
                mlflow.log_metric("best_value", study.best_value)
                mlflow.log_params({f"best.{k}": str(v)[:500]
                                   for k, v in study.best_params.items()})
    logger.info("Study '%s': %d trials this run, %d in total", study.study_name,
                len(study.trials) - before, len(study.trials))
    return study


def trial_counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    return {s: states.count(s) for s in ("complete", "pruned", "fail", "running")}


def redact(url: str) -> str:
    """The storage URL without its password, for reports."""
    from sqlalchemy.engine import make_url

    if url.startswith("journal:"):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


# --------------------------------------------------------------------------- reports
def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, parameters, validation scores, timings."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "datetime_start",
                                          "duration", "params", "user_attrs"))
    if "user_attrs_params" in frame:  # the full block is in best_params.json; too wide here
        frame = frame.drop(columns="user_attrs_params")
    if "duration" in frame:
        frame["duration_s"] = frame.pop("duration").dt.total_seconds()
    return frame


def best_summary(study: optuna.Study, storage: str, metric: str) -> dict[str, Any]:
    """The best trial: its value, its Optuna values and its full model parameter block."""
    counts = trial_counts(study)
    if not counts["complete"]:
        raise RuntimeError(f"study '{study.study_name}' has no completed trial yet "
                           f"({counts}); run more trials (params:tuning.n_trials)")
    best = study.best_trial
    return {"study": study.study_name, "storage": redact(storage), "metric": metric,
            "direction": study.direction.name.lower(), "best_value": best.value,
            "best_trial": best.number, "n_trials": counts,
            "search_values": best.params,
            "val_scores": {k: best.user_attrs.get(k) for k in METRICS},
            "params": best.user_attrs["params"]}


def _message_figure(title: str, message: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def study_figures(study: optuna.Study):
    """Optimisation history, parameter importances and parallel coordinates (matplotlib).

    A plot Optuna cannot draw yet (e.g. importances need two finished trials that differ) is a
    figure that says why, so the versioned outputs always exist.
    """
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as ovm

    figures = []
    for title, plot in (("optimisation history", ovm.plot_optimization_history),
                        ("parameter importances", ovm.plot_param_importances),
                        ("parallel coordinates", ovm.plot_parallel_coordinate)):
        try:
            with _quiet_optuna_warnings():
                ax = plot(study)
            ax = ax.flat[0] if isinstance(ax, np.ndarray) else ax
            fig = ax.figure
            fig.set_size_inches(9, 5)
            fig.tight_layout()
        except Exception as exc:  # too few trials for this plot
            fig = _message_figure(title, f"not available yet: {exc}")
        figures.append(fig)
    return tuple(figures)


@contextlib.contextmanager
def _quiet_optuna_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
