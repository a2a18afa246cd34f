"""``kedro run --pipeline tune_<model>``: Optuna study of a roster model, then the best one."""

from .pipeline import create_pipeline, single_tuning_pipeline, tuning_pipeline

__all__ = ["create_pipeline", "single_tuning_pipeline", "tuning_pipeline"]
