"""``cnn.training_precision``: a CNN trained in mixed_bfloat16 is switched to float32 when
training ends, so it is evaluated, saved and served in float32 (the same numbers as a float32
model holding its weights), on any machine."""

import keras
import numpy as np
import pytest

from music_genre.models import builders, training
from music_genre.models.specaugment import SpecAugment  # noqa: F401 (registered for loading)

PARAMS = {"kind": "keras_cnn", "filters": [4, 8], "dense_units": 16, "dropout": 0.1,
          "specaugment": {"enabled": True}, "batch_size": 8, "epochs": 2, "verbose": 0,
          "early_stopping": {"patience": 1}, "reduce_lr": {"enabled": False}}


def _data(n=24):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 16, 17, 1)).astype("float32"), np.arange(n) % 10


def test_training_policy_names():
    assert builders.training_policy(None) is None
    assert builders.training_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert builders.training_policy("bf16_if_supported") in (None, "mixed_bfloat16")
    if not builders.cpu_has_bfloat16():
        assert builders.training_policy("bf16_if_supported") is None


def test_a_cnn_trained_in_bfloat16_is_float32_after_training(tmp_path):
    x, y = _data()
    params = {**PARAMS, "training_precision": "mixed_bfloat16"}
    model = builders.build_cnn(params, x.shape[1:], 10, seed=0)
    assert model.get_layer("conv_0").dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0,
              callbacks=training._callbacks(params))
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    # the same predictions as a float32 model holding the trained weights, before and after saving
    twin = builders.build_cnn(PARAMS, x.shape[1:], 10, seed=0)
    twin.set_weights(model.get_weights())
    expected = twin.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    model.save(tmp_path / "cnn.keras")
    loaded = keras.models.load_model(tmp_path / "cnn.keras")
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


@pytest.mark.parametrize("precision", [None, "off"])
def test_without_training_precision_nothing_changes(precision):
    x, y = _data()
    params = {**PARAMS, "training_precision": precision}
    model = builders.build_cnn(params, x.shape[1:], 10, seed=0)
    assert model.get_layer("conv_0").dtype_policy.name == "float32"
    names = [type(cb).__name__ for cb in training._callbacks(params)]
    assert "Float32AfterTraining" not in names and "EarlyStopping" in names
