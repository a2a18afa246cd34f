from kedro.pipeline import Pipeline

from music_genre.pipelines import data_processing
from music_genre.pipelines.tune_rf import tuning_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    # the template lives with tune_rf; cached extraction makes data processing take seconds
    return data_processing.create_pipeline() + tuning_pipeline("cnn", "spectrograms")
