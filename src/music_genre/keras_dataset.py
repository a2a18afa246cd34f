"""The Keras model dataset, apart from :mod:`music_genre.datasets` so that TensorFlow is only
imported by runs that touch a Keras model."""

from __future__ import annotations

from kedro_datasets.tensorflow import TensorFlowModelDataset


class KerasModelDataset(TensorFlowModelDataset):
    """``tensorflow.TensorFlowModelDataset`` that first registers the project's custom layers, so
    ``.keras`` files load under Keras' ``safe_mode=True``."""

    def load(self):
        import music_genre.models.specaugment  # noqa: F401  (registers SpecAugment)

        return super().load()
