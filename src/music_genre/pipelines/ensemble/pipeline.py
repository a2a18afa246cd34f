"""``kedro run --pipeline ensemble``: average the trained models' test probabilities.

Weights are chosen on the members' grouped out-of-fold predictions of the latest evaluate_cv run
(``params:ensemble.weights: auto``); the bundle ``ensemble.model`` (members, weights) is what
the service serves as ``model=ensemble``.

Reads ``<model>.metrics`` and ``<model>.predictions`` of every model in ``ENSEMBLE_MODELS``
(run them first, or run ``kedro run``); ``params:ensemble.weights`` sets each one's weight
(0 leaves a model out). Writes ``ensemble.metrics``, ``ensemble.predictions``... like a model.
"""

from kedro.pipeline import Node, Pipeline

from music_genre.pipelines.training import MODELS

from .nodes import evaluate_ensemble

# the full-band template models and the MusiCNN transfer model (its own pipeline package);
# rf_robust is the band-limited twin of rf, not a different opinion worth averaging
ENSEMBLE_MODELS = [m for m in MODELS if m != "rf_robust"] + ["transfer"]


def create_pipeline(**kwargs) -> Pipeline:
    members = [d for m in ENSEMBLE_MODELS for d in (f"{m}.metrics", f"{m}.predictions")]
    return Pipeline([
        Node(evaluate_ensemble,
             ["params:ensemble", "params:genres", "cv_predictions_latest", *members],
             ["ensemble.model", "ensemble.metrics", "ensemble.per_genre", "ensemble.predictions",
              "ensemble.confusion_matrix", "ensemble.training_curves"],
             name="evaluate_ensemble"),
    ])  # fmt: skip
