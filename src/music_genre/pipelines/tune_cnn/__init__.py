"""``kedro run --pipeline tune_cnn``: Optuna study of the Keras CNN (pruned per epoch), then the best one."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
