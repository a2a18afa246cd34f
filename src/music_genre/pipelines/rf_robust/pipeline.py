from kedro.pipeline import Pipeline

from music_genre.pipelines import data_processing
from music_genre.pipelines.training import MODELS, model_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    # cached extraction makes the data-processing part take seconds once it has run
    return data_processing.create_pipeline() + model_pipeline("rf_robust", MODELS["rf_robust"])
