"""``kedro run --pipeline ensemble``: average the trained models' test probabilities.

Weights are chosen on the members' grouped out-of-fold predictions of the latest evaluate_cv run
(``params:ensemble.weights: auto``); the bundle ``ensemble.model`` (members, weights) is what
the service serves as ``model=ensemble``.

Reads ``<model>.metrics`` and ``<model>.predictions`` of every model in ``ENSEMBLE_MODELS``
(run them first, or run ``kedro run``); ``params:ensemble.weights`` sets each one's weight
(0 leaves a model out). Writes ``ensemble.metrics``, ``ensemble.predictions``... like a model.
"""

from kedro.pipeline import Node, Pipeline

from music_genre import roster

from .nodes import evaluate_ensemble

# the roster's ensemble candidates (rf_robust, the band-limited twin of rf, is not one)
ENSEMBLE_MODELS = roster.ensemble_members()


def create_pipeline(**kwargs) -> Pipeline:
    members = [d for m in roster.ensemble_members()
               for d in (f"{m}.metrics", f"{m}.predictions")]
    return Pipeline([
        Node(evaluate_ensemble,
             ["params:ensemble", "params:genres", "cv_predictions_latest", *members],
             ["ensemble.model", "ensemble.metrics", "ensemble.per_genre", "ensemble.predictions",
              "ensemble.confusion_matrix", "ensemble.training_curves"],
             name="evaluate_ensemble"),
    ])  # fmt: skip
