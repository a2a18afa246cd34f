"""``kedro run --pipeline tune_mlp``: Optuna study of the Keras MLP (pruned per epoch), then the best one."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
