"""Project hooks: pin the local tracking store to the project, say where artifacts went, and make
a run read back what it wrote itself."""

from __future__ import annotations

import logging
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import Version

from music_genre.tracking import import_tensorflow_first

logger = logging.getLogger(__name__)

MODELS_INPUT = "classify.models"  # conf/base/catalog_classify.yml


def _uses_keras(pipeline, catalog) -> bool:
    """Whether a run may import Keras: it reads or writes a ``.keras`` model (networks, MusiCNN),
    or classifies with a model chosen at run time."""
    from music_genre.keras_dataset import KerasModelDataset

    if MODELS_INPUT in pipeline.datasets():
        return True
    for name in pipeline.datasets():
        try:
            if isinstance(catalog.get(name), KerasModelDataset):
                return True
        except Exception:  # a dataset that cannot be built now is not a Keras model
            continue
    return False


class ProjectHooks:
    def __init__(self) -> None:
        self._catalog = None
        self._metrics: dict[str, dict] = {}  # <model>.metrics saved by this run
        self._saved: dict[str, str] = {}  # dataset name -> path written by this run
        self._selection: dict | None = None  # model_selection written by this run

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:  # noqa: ARG002
        self._metrics, self._saved, self._selection = {}, {}, None
        if _uses_keras(pipeline, catalog):
            # before any `import keras`: MLflow's autolog import hook needs this order
            import_tensorflow_first()
        self._give_classify_its_models(pipeline, catalog)

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

    def _give_classify_its_models(self, pipeline, catalog) -> None:
        """Give the classify pipeline its ``classify.models``: this run's catalog, from which
        the node loads the one model it uses (a node input cannot be chosen by a parameter)."""
        if MODELS_INPUT not in pipeline.inputs():
            return
        from music_genre.classify_io import TrainedModels

        models = TrainedModels(catalog, catalog.load("parameters"))
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


def _pct(figure: dict | None) -> str:
    if not figure:
        return "–"
    lo, hi = figure.get("ci95") or (None, None)
    interval = f" [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None else ""
    return f"{100 * float(figure['accuracy']):.1f} %{interval}"


def run_summary(metrics: dict[str, dict], saved: dict[str, str],
                selection: dict | None = None) -> list[str]:
    """The closing lines of a run: the models it evaluated, each with the figures the ranking uses
    (``model_selection``: grouped CV, other artists, test split, 95 % intervals) or, without a
    ranking, test accuracy and macro F1; then where the reports are. Nothing for runs that
    evaluated no model and wrote no report."""
    lines = []
    ranking = [r for r in (selection or {}).get("ranking", [])
               if not metrics or r["model"] in metrics]
    if ranking:
        lines.append(f"Run summary: {len(ranking)} model(s), in the ranking's order (accuracy: "
                     "grouped CV | other artists | test split, 95 % intervals):")
        for row in ranking:
            mark = "  <- default" if row["model"] == selection.get("default") else ""
            lines.append(f"  {row['model']:<12} {_pct(row.get('grouped'))} | "
                         f"{_pct(row.get('holdout'))} | {_pct(row.get('split'))}{mark}")
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
