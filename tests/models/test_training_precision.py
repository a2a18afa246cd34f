"""``accelerator.mixed_precision: bf16_if_supported`` (the CNN's default): bfloat16 compute where
the CPU has it, and a model trained so is switched to float32 when training ends, so it is
evaluated, saved and served in float32 (the same numbers as a float32 model holding its
weights), on any machine."""

import keras
import numpy as np

from music_genre import distributed
from music_genre.models import builders, training
from music_genre.models.specaugment import SpecAugment  # noqa: F401 (registered for loading)

PARAMS = {"kind": "keras_cnn", "filters": [4, 8], "dense_units": 16, "dropout": 0.1,
          "specaugment": {"enabled": True}, "batch_size": 8, "epochs": 2, "verbose": 0,
          "early_stopping": {"patience": 1}, "reduce_lr": {"enabled": False}}


def _data(n=24):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 16, 17, 1)).astype("float32"), np.arange(n) % 10


def test_bf16_if_supported_follows_the_cpu():
    name = distributed.precision_policy_name("bf16_if_supported")
    if distributed.cpu_has_bfloat16() and not distributed.gpus():
        assert name == "mixed_bfloat16"
    else:
        assert name == "float32"


def test_a_cnn_trained_in_bfloat16_is_float32_after_training(tmp_path):
    x, y = _data()
    params = {**PARAMS, "accelerator": {"mixed_precision": "bf16_if_supported"}}
    with distributed.precision_policy("mixed_bfloat16"):  # what bf16_if_supported gives here
        model = builders.build_cnn(params, x.shape[1:], 10, seed=0)
    assert model.get_layer("conv_0").dtype_policy.name == "mixed_bfloat16"
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


def test_other_precisions_keep_their_policy():
    for setting in (None, "off", "mixed_bfloat16"):
        names = [type(cb).__name__ for cb in training._callbacks(
            {**PARAMS, "accelerator": {"mixed_precision": setting}})]
        assert "Float32AfterTraining" not in names and "EarlyStopping" in names
