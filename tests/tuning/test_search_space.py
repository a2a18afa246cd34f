"""Search spaces come from YAML: every committed space samples valid, full parameter blocks."""

from __future__ import annotations

import optuna
import pytest

from music_genre import tuning

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("model", ["rf", "mlp", "cnn"])
def test_committed_spaces_sample_full_blocks(model, tuning_conf, model_params):
    conf, base = tuning_conf[model], model_params[model]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(25):
        trial = study.ask()
        params = tuning.suggest_params(trial, base, conf["space"], conf["fixed"])
        # everything of the base block survives, the fixed settings apply
        assert set(params) >= set(base) and params["kind"] == base["kind"]
        for key, value in conf["fixed"].items():
            assert params[key] == value
        for key, spec in conf["space"].items():
            value = params
            for part in key.split("."):
                value = value[part]
            if "length" in spec:
                assert spec["length"]["low"] <= len(value) <= spec["length"]["high"]
                assert set(value) <= set(spec["item"]["choices"])
            elif "choices" in spec:
                assert value in spec["choices"]
            else:
                assert spec["low"] <= value <= spec["high"]
                assert isinstance(value, int) == isinstance(spec["low"], int)
        # a trial's values rebuild the same block (how best_params is trained again)
        assert tuning.params_from_values(trial.params, base, conf["space"],
                                         conf["fixed"]) == params
        study.tell(trial, 0.0)
    assert base == model_params[model]  # the base block is never modified in place


def test_distributions_follow_the_yaml(tuning_conf, model_params):
    trial = optuna.create_study().ask()
    tuning.suggest_params(trial, model_params["mlp"], tuning_conf["mlp"]["space"])
    dist = trial.distributions
    assert dist["optimizer.learning_rate"].log and dist["optimizer.weight_decay"].log
    assert not dist["dropout"].log
    assert isinstance(dist["hidden_units.length"], optuna.distributions.IntDistribution)
    assert isinstance(dist["batch_size"], optuna.distributions.CategoricalDistribution)
    n = trial.params["hidden_units.length"]
    assert [f"hidden_units.{i}" in dist for i in range(3)] == [i < n for i in range(3)]


def test_a_new_key_needs_no_code():
    space = {"reduce_lr.factor": {"low": 0.2, "high": 0.8, "step": 0.1},
             "kernel_size": {"choices": [3, 5]},
             "filters": {"length": 2, "item": {"low": 8, "high": 64, "log": True}}}
    trial = optuna.create_study().ask()
    params = tuning.suggest_params(trial, {"kind": "keras_cnn", "reduce_lr": {"patience": 5}},
                                   space)
    assert params["reduce_lr"]["patience"] == 5 and 0.2 <= params["reduce_lr"]["factor"] <= 0.8
    assert params["kernel_size"] in (3, 5)
    assert len(params["filters"]) == 2 and all(8 <= f <= 64 for f in params["filters"])


@pytest.mark.parametrize("spec, message", [
    ({"low": 0.1}, "give 'low' and 'high'"),
    ({"low": 0.0, "high": 1.0, "log": True}, "log-scale range needs low > 0"),
    ({"low": 2, "high": 1}, "must be below high"),
    ({"choices": []}, "non-empty list"),
    ({"low": 1, "high": 3, "scale": "log"}, "unknown keys"),
    ({"length": 2}, "needs 'item'"),
    (0.5, "expected a mapping"),
])
def test_bad_entries_name_the_key(spec, message):
    trial = optuna.create_study().ask()
    with pytest.raises(tuning.SearchSpaceError, match=message) as err:
        tuning.suggest_params(trial, {"kind": "keras_mlp"}, {"dropout": spec})
    assert "space.dropout" in str(err.value)


@pytest.mark.parametrize("model", ["rf", "mlp", "cnn"])
def test_the_configured_block_is_a_point_of_its_space(model, tuning_conf, model_params):
    """So a new study's trial 0 can be the untuned baseline (params:tuning.enqueue_base)."""
    conf, base = tuning_conf[model], model_params[model]
    start = tuning.merge_params(base, conf["fixed"])
    values = tuning.values_of(start, conf["space"])
    assert values is not None
    assert tuning.params_from_values(values, base, conf["space"], conf["fixed"]) == start
    outside = tuning.merge_params(start, {"dropout": 0.99, "pca_components": 7,
                                          "random_forest.n_estimators": 5000})
    assert tuning.values_of(outside, conf["space"]) is None
