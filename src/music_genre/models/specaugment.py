"""SpecAugment (Park et al., 2019) as a Keras layer: active in training only.

Being part of the model, it can never leak into validation, test or serving (Keras calls layers
with ``training=False`` there), and it costs no extra copies of the data.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="music_genre")
class SpecAugment(keras.layers.Layer):
    """With probability ``p`` per example: one time mask of up to ``time_mask`` frames and one
    frequency mask of up to ``freq_mask`` bins, set to ``mask_value``.

    Input: (batch, n_mels, n_frames, channels).
    """

    def __init__(self, p=0.5, time_mask=20, freq_mask=10, mask_value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.p = float(p)
        self.time_mask = int(time_mask)
        self.freq_mask = int(freq_mask)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch, length, max_width, axis_len):
        width = ops.floor(keras.random.uniform((batch, 1), 0, max_width + 1,
                                                seed=self.seed_generator))
        start = ops.floor(keras.random.uniform((batch, 1), 0, 1, seed=self.seed_generator)
                          * ops.maximum(ops.cast(axis_len, "float32") - width, 1.0))
        pos = ops.cast(ops.arange(length), "float32")[None, :]
        return ops.logical_and(pos >= start, pos < start + width)  # (batch, length)

    def call(self, inputs, training=None):
        if not training or self.p <= 0:
            return inputs
        shape = ops.shape(inputs)
        batch, n_mels, n_frames = shape[0], shape[1], shape[2]
        apply = keras.random.uniform((batch, 1), seed=self.seed_generator) < self.p
        fmask = ops.logical_and(self._mask(batch, n_mels, self.freq_mask, n_mels), apply)
        tmask = ops.logical_and(self._mask(batch, n_frames, self.time_mask, n_frames), apply)
        mask = ops.logical_or(fmask[:, :, None], tmask[:, None, :])[..., None]
        return ops.where(mask, ops.cast(self.mask_value, inputs.dtype), inputs)

    def get_config(self):
        return {**super().get_config(), "p": self.p, "time_mask": self.time_mask,
                "freq_mask": self.freq_mask, "mask_value": self.mask_value, "seed": self.seed}
