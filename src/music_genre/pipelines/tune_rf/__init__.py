"""``kedro run --pipeline tune_rf``: Optuna study of the Random Forest, then the best one."""

from .pipeline import create_pipeline, tuning_pipeline

__all__ = ["create_pipeline", "tuning_pipeline"]
