"""music_genre.inference: the service's input builders."""

from __future__ import annotations

import numpy as np

from music_genre import audio


def test_the_service_applies_a_keras_models_chain_from_its_bundle():
    """The service reads a Keras model's input spec from its bundle's contract and computes
    exactly the degraded_features row: the 57 reference columns of the rich features of the
    8 kHz copy."""
    from music_genre import inference

    params = audio.ExtractionParams(duration_s=6.0)
    sr = params.sample_rate
    t = np.arange(6 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.float32)
    spec = {"columns": list(audio.FEATURE_NAMES), "rich_segment_s": 3.0,
            "degradation": "resample_8k"}
    loaded = inference.LoadedModel("mlp", object(), contract={"input": spec})
    got = inference.input_builder("mlp").build(y, params, loaded).x
    expected = audio.rich_features(audio.degrade(y, sr, "resample_8k"), params, 3.0)[:57]
    np.testing.assert_array_equal(got, expected[None].astype(np.float32))
    # the 6 kHz tone is gone: the centroid is that of the 440 Hz one
    full = inference.input_builder("mlp").build(y, params, inference.LoadedModel("mlp", object()))
    centroid = audio.FEATURE_NAMES.index("spectral_centroid_mean")
    assert got[0, centroid] < 1000 < full.x[0, centroid]
