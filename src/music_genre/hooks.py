"""Project hooks: pin the local tracking store to the project, say where artifacts went, make
a run read back what it wrote itself, record in every ``<model>.metrics`` what the model was
trained on (``training_data``: demo models say they learnt from synthetic audio), and warn when
a run with runtime parameters replaces the latest versions other runs and the API read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import Version

from music_genre.tracking import import_tensorflow_first

logger = logging.getLogger(__name__)

MODELS_INPUT = "classify.models"  # conf/base/catalog_classify.yml


def _uses_keras(pipeline, catalog) -> bool:
    """Whether a run may import Keras: it reads or writes a ``.keras`` model (networks, MusiCNN),
    a model bundle of a Keras family (:func:`_bundle_is_keras`), or classifies with a model
    chosen at run time."""
    from music_genre.bundle_dataset import ModelBundleDataset
    from music_genre.keras_dataset import KerasModelDataset

    if MODELS_INPUT in pipeline.datasets():
        return True
    for name in pipeline.datasets():
        try:
            dataset = catalog.get(name)
        except Exception:  # a dataset that cannot be built now is not a Keras model
            continue
        if isinstance(dataset, KerasModelDataset):
            return True
        if isinstance(dataset, ModelBundleDataset) and _bundle_is_keras(name, catalog):
            return True
    return False


def _bundle_is_keras(name: str, catalog) -> bool:
    """Whether ``<m>.model`` holds (or will hold) a Keras model: its ``params:<m>.kind``'s family
    (``<m>_tuned``: ``<m>``'s); True when that cannot be told."""
    from music_genre.models import families

    model = name.rpartition(".")[0].removesuffix("_tuned")
    try:
        return families.by_kind(str(catalog.get(f"params:{model}").load()["kind"])).keras
    except Exception:
        return True


class ProjectHooks:
    def __init__(self) -> None:
        self._catalog = None
        self._training_data: dict[str, Any] = {}
        self._metrics: dict[str, dict] = {}  # <model>.metrics saved by this run
        self._saved: dict[str, str] = {}  # dataset name -> path written by this run
        self._selection: dict | None = None  # model_selection written by this run

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        """Before kedro-mlflow's own hook (``tryfirst``): hand it ``mlflow.yml`` with the SQLite
        URI already absolute, so that it never creates ``data/<env>/mlflow.db`` under the
        working directory of a process started elsewhere (``--project-path``) or of a test."""
        self._training_data = _training_data(context)
        loader = context.config_loader
        try:
            loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
            config = loader["mlflow"]
        except Exception:  # no mlflow.yml: kedro-mlflow's defaults, nothing relative to fix
            return
        server = config.get("server") or {}
        uri = server.get("mlflow_tracking_uri") or ""
        absolute = _absolute_sqlite(uri, context.project_path)
        if absolute != uri:
            loader["mlflow"] = {**config, "server": {**server, "mlflow_tracking_uri": absolute}}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._metrics, self._saved, self._selection = {}, {}, None
        if _uses_keras(pipeline, catalog):
            # before any `import keras`: MLflow's autolog import hook needs this order
            import_tensorflow_first()
        self._give_classify_its_models(pipeline, catalog)
        runtime = dict(run_params.get("runtime_params") or {})
        self._training_data.update(
            session_id=run_params.get("run_id") or run_params.get("session_id"),
            pipelines=run_params.get("pipeline_names"), runtime_params=runtime,
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"))
        if runtime.get("raw_root"):
            self._training_data.update(synthetic=False,
                                       description=f"audio files under {runtime['raw_root']}")
        # `classify.*` is the classify pipeline's everyday interface (a folder to classify),
        # not a change of what the env trains on or serves
        changing = {k: v for k, v in runtime.items() if k != "classify"}
        if changing:
            warn_replaced_latest(changing, pipeline, catalog, run_params.get("env"))

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data, node) -> None:  # noqa: ARG002
        # every model's metrics carry what it was trained on (the service shows it)
        if dataset_name.endswith(".metrics") and isinstance(data, dict) and self._training_data:
            data.setdefault("training_data", dict(self._training_data))

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        self._catalog = catalog

    def _give_classify_its_models(self, pipeline, catalog) -> None:
        """Give the classify pipeline its ``classify.models``: this run's catalog, from which
        the node loads the one model it uses (a node input cannot be chosen by a parameter)."""
        if MODELS_INPUT not in pipeline.inputs():
            return
        from music_genre.classify_io import TrainedModels

        models = TrainedModels(catalog, catalog.load("parameters"),
                               env=self._training_data.get("env"))
        if isinstance(catalog.get(MODELS_INPUT), MemoryDataset):  # conf/base/catalog_classify.yml
            catalog.get(MODELS_INPUT).save(models)
        else:
            catalog[MODELS_INPUT] = MemoryDataset(models, copy_mode="assign")

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:  # noqa: ARG002
        """One closing summary: the models this run evaluated, with both figures the comparison
        ranks by, and where the comparison report is."""
        for line in run_summary(self._metrics, self._saved, self._selection):
            logger.info(line)

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
            self._saved[dataset_name] = str(path)
        if dataset_name.endswith(".metrics") and isinstance(data, dict) and "accuracy" in data:
            self._metrics[dataset_name.rsplit(".", 1)[0]] = data
        if dataset_name == "model_selection" and isinstance(data, dict):
            self._selection = data


def run_summary(metrics: dict[str, dict], saved: dict[str, str],
                selection: dict | None = None) -> list[str]:
    """The closing lines of a run: the models it evaluated, each with the figures the ranking uses
    (``model_selection``: grouped CV, other artists, test split, 95 % intervals) or, without a
    ranking, test accuracy and macro F1; then where the reports are. Nothing for runs that
    evaluated no model and wrote no report."""
    from music_genre.selection import format_figure  # pandas/numpy: only when a run ends

    lines = []
    ranking = [r for r in (selection or {}).get("ranking", [])
               if not metrics or r["model"] in metrics]
    if ranking:
        lines.append(f"Run summary: {len(ranking)} model(s), in the ranking's order (accuracy: "
                     "grouped CV | other artists | test split, 95 % intervals):")
        for row in ranking:
            mark = "  <- default" if row["model"] == selection.get("default") else ""
            lines.append(f"  {row['model']:<12} {format_figure(row.get('grouped'))} | "
                         f"{format_figure(row.get('holdout'))} | {format_figure(row.get('split'))}{mark}")
    elif metrics:
        ranked = sorted(metrics.items(), key=lambda kv: -float(kv[1].get("accuracy") or 0.0))
        n_test = max(int(m.get("n_test") or 0) for _, m in ranked)
        lines.append(f"Run summary: {len(ranked)} model(s) evaluated on the test split "
                     f"({n_test} tracks); accuracy / macro F1:")
        for name, m in ranked:
            f1 = m.get("f1_macro")
            lines.append(f"  {name:<12} {100 * float(m['accuracy']):6.2f} % / "
                         + (f"{float(f1):.3f}" if f1 is not None else "n/a"))
    for key, label in (("comparison_markdown", "Comparison report"),
                       ("model_selection_markdown", "Model ranking"),
                       ("comparison_chart", "Comparison chart"),
                       ("classify.results", "Classification table")):
        if key in saved:
            lines.append(f"{label}: {saved[key]}")
    return lines


def _absolute_sqlite(uri: str, project_path) -> str:
    """``sqlite:///data/x.db`` → ``sqlite:////<project>/data/x.db``; other URIs unchanged.
    (kedro-mlflow resolves relative *file* paths against the project but not SQLite URLs, and
    MLflow caches one store per URI string.)"""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + "/"):
        return uri
    return prefix + str((Path(project_path) / uri[len(prefix):]).resolve())


def _training_data(context) -> dict[str, Any]:
    """``params:training_data`` (conf/base: real audio; conf/demo: synthetic) and the env."""
    try:
        declared = dict(context.params.get("training_data") or {})
    except Exception:  # parameters that do not resolve fail later, with Kedro's own message
        declared = {}
    return {"synthetic": bool(declared.get("synthetic", False)),
            "description": str(declared.get("description", "audio files under raw_root")),
            "env": context.env or "local"}


def warn_replaced_latest(runtime: dict[str, Any], pipeline, catalog, env: str | None) -> None:
    """One warning when a run with runtime parameters is about to save new *latest* versions of
    datasets that already have one: every later run of the env and the API read the latest, so
    a one-off ``--params raw_root=...`` or ``cnn.epochs=2`` run would silently replace them."""
    replaced = []
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name) if hasattr(catalog, "get") else None
        version = getattr(dataset, "_version", None)
        if not isinstance(version, Version):
            continue
        try:
            dataset.resolve_load_version()
            replaced.append(name)
        except Exception:  # no version yet: nothing is replaced
            continue
    if not replaced:
        return
    shown = ", ".join(replaced[:12]) + (f" and {len(replaced) - 12} more" if len(replaced) > 12
                                        else "")
    logger.warning(
        "This run has runtime parameters %s and saves new latest versions of %s in env '%s': "
        "later runs of that env and the prediction service will read these instead of the "
        "current ones. For a one-off experiment use an env of its own (conf/<name>/globals.yml "
        "with 'data: data/<name>'), or load the previous versions with --load-versions.",
        runtime, shown, env or "local")


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
