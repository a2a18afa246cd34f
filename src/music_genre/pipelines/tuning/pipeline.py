"""Tuning pipelines: tune a model's hyper-parameters with Optuna, then train the best.

``tuning_pipeline(model)`` is the template; the pipeline registry builds ``tune_<model>`` for
every model of the roster marked ``tunable`` (``music_genre.roster``), on the same input table
the model trains on. Two parts, each with a tag:

* ``tune`` (namespace ``<model>``): add trials to the model's study, then report it
  (``<model>.best_params``, ``<model>.trials``, three plots);
* ``train_best`` (namespace ``<model>_tuned``): train the best trial's full parameter block on
  the training split and evaluate it on the test split like any model (``<model>_tuned.metrics``).

``kedro run --pipeline tune_rf --tags train_best`` trains the best parameters of the latest
saved report again without tuning; ``--tags tune`` only tunes (extra workers).
"""

from kedro.pipeline import Node, Pipeline

from music_genre import roster
from music_genre.pipelines.training import AUGMENTABLE, template

from .nodes import best_model_params, report_study, tune_model


def tuning_pipeline(model: str, model_input: str | None = None) -> Pipeline:
    """``tune`` + ``train_best`` for ``model`` on ``model_input`` (default: the roster's input
    of the model, so the trials see what its training sees)."""
    model_input = model_input or roster.spec(model).input
    augmentable = model_input in AUGMENTABLE
    embedding = roster.spec(model).family == "embedding"  # its bundle carries params:musicnn
    degraded = {"degraded": "degraded_features"} if augmentable else {}
    tune = Pipeline(
        [
            Node(tune_model,
                 ["model_input", "split", "params:model", "params:model_tuning",
                  "params:tuning", "params:genres", "params:seed"]
                 + (["degraded"] if augmentable else []),
                 "study", name="tune_hyperparameters"),
            Node(report_study, "study",
                 ["best_params", "trials", "optimization_history", "param_importances",
                  "parallel_coordinate"], name="report_study"),
        ],
        namespace=model, tags=["tune"],
        inputs={"model_input": model_input, "split": "split", **degraded},
        parameters={"params:model": f"params:{model}",
                    "params:model_tuning": f"params:tuning.{model}",
                    "params:tuning": "params:tuning", "params:genres": "params:genres",
                    "params:seed": "params:seed"},
    )
    train_best = Pipeline(
        Pipeline([Node(best_model_params, "best_params", "params",
                       name="best_model_params")])
        + template("params", augmentable=augmentable, embedding=embedding),
        namespace=f"{model}_tuned", tags=["train_best"],
        inputs={"model_input": model_input, "split": "split",
                "best_params": f"{model}.best_params", **degraded},
        parameters={"params:genres": "params:genres", "params:seed": "params:seed",
                    "params:extraction": "params:extraction",
                    **({"params:musicnn": "params:musicnn"} if embedding else {})},
    )
    return tune + train_best


def single_tuning_pipeline(model: str) -> Pipeline:
    """``kedro run --pipeline tune_<model>``: data processing (cached: seconds once it has run)
    + the model's study + its best trial trained and evaluated."""
    from music_genre.pipelines import data_processing

    return data_processing.create_pipeline() + tuning_pipeline(model)


def create_pipeline(**kwargs) -> Pipeline:
    """Every tunable model's study (``kedro run --pipeline tuning``; not in the default run)."""
    return sum((tuning_pipeline(m) for m in roster.tunable_models()), Pipeline([]))
