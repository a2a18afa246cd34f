"""Tuning pipelines: tune a model's hyper-parameters with Optuna, then train the best.

``tuning_pipeline(model, model_input)`` is the template every ``tune_<model>`` pipeline
instantiates (this one for ``rf``). Two parts, each with a tag:

* ``tune`` (namespace ``<model>``): add trials to the model's study, then report it
  (``<model>.best_params``, ``<model>.trials``, three plots);
* ``train_best`` (namespace ``<model>_tuned``): train the best trial's full parameter block on
  the training split and evaluate it on the test split like any model (``<model>_tuned.metrics``).

``kedro run --pipeline tune_rf --tags train_best`` trains the best parameters of the latest
saved report again without tuning; ``--tags tune`` only tunes (extra workers).
"""

from kedro.pipeline import Node, Pipeline

from music_genre import tuning
from music_genre.pipelines import data_processing
from music_genre.pipelines.training import AUGMENTABLE, template


def tuning_pipeline(model: str, model_input: str) -> Pipeline:
    tune = Pipeline(
        [
            Node(tuning.tune_model,
                 ["model_input", "split", "params:model", "params:model_tuning",
                  "params:tuning", "params:genres", "params:seed"],
                 "study", name="tune_hyperparameters"),
            Node(tuning.report_study, "study",
                 ["best_params", "trials", "optimization_history", "param_importances",
                  "parallel_coordinate"], name="report_study"),
        ],
        namespace=model, tags=["tune"],
        inputs={"model_input": model_input, "split": "split"},
        parameters={"params:model": f"params:{model}",
                    "params:model_tuning": f"params:tuning.{model}",
                    "params:tuning": "params:tuning", "params:genres": "params:genres",
                    "params:seed": "params:seed"},
    )
    train_best = Pipeline(
        Pipeline([Node(tuning.best_model_params, "best_params", "params",
                       name="best_model_params")])
        + template("params", augmentable=model_input in AUGMENTABLE),
        namespace=f"{model}_tuned", tags=["train_best"],
        inputs={"model_input": model_input, "split": "split",
                "best_params": f"{model}.best_params",
                **({"degraded": "degraded_features"} if model_input in AUGMENTABLE else {})},
        parameters={"params:genres": "params:genres", "params:seed": "params:seed",
                    "params:extraction": "params:extraction"},
    )
    return tune + train_best


def create_pipeline(**kwargs) -> Pipeline:
    return data_processing.create_pipeline() + tuning_pipeline("rf", "features")
