"""The configuration as Kedro resolves it: one reference recipe, each pipeline's blocks in its
own files."""

from __future__ import annotations

from kedro.config import OmegaConfigLoader

from tests.helpers import PROJECT_ROOT


def test_reference_environment_is_the_reference_recipe():
    """conf/reference trains exactly evaluate_cv.reference_recipe (the side-by-side baseline),
    merged over base the way the project merges parameters (softly: keys only base sets, such
    as the segment CNN of base, reach the reference env unless it sets them)."""
    from music_genre.settings import CONFIG_LOADER_ARGS

    merged = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base",
                               default_run_env="reference",
                               merge_strategy=CONFIG_LOADER_ARGS["merge_strategy"])["parameters"]
    recipe = merged["evaluate_cv"]["reference_recipe"]
    # how the service computes rf's columns and where Keras runs: no effect on the recipe
    neutral = {"rich_segment_s", "accelerator"}
    for model in ("rf", "mlp", "cnn"):
        assert {k: v for k, v in merged[model].items() if k not in neutral} == \
            {k: v for k, v in recipe[model].items() if k not in neutral}, model
    # ... but the precision is the reference's: float32 (base's CNN uses bfloat16 where it can)
    assert merged["cnn"]["accelerator"]["mixed_precision"] == "float32"
    assert recipe["rf"]["pca_components"] == 30 and recipe["cnn"]["filters"] == [32, 64, 128, 256]
    assert recipe["cnn"]["segment"]["frames"] is None  # whole 30 s spectrograms
    assert merged["cnn"]["segment"]["frames"] is None and merged["rf"]["augment"] == []


def test_the_recipe_is_written_once():
    """The blocks live in conf/base/globals.yml only: conf/reference and evaluate_cv refer to them
    (a copy in either would drift)."""
    reference = (PROJECT_ROOT / "conf/reference/parameters.yml").read_text()
    for model in ("rf", "mlp", "cnn"):
        assert f"{model}: ${{globals:reference_recipe.{model}}}" in reference
    assert "n_estimators" not in reference and "hidden_units" not in reference
    evaluate_cv = (PROJECT_ROOT / "conf/base/parameters_evaluate_cv.yml").read_text()
    assert "reference_recipe: ${globals:reference_recipe}" in evaluate_cv
    # a plain loader (the project's defaults) resolves it too: benchmarks and tools use one
    base = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base",
                             default_run_env="base")["parameters"]
    assert base["evaluate_cv"]["reference_recipe"]["rf"]["random_forest"]["n_estimators"] == 200


def test_each_pipeline_s_blocks_sit_in_its_own_files():
    """Conf by pipeline: top-level keys of parameters_<x>.yml / catalog_<x>.yml belong to x."""
    import yaml

    def keys(name: str) -> set[str]:
        return set(yaml.safe_load((PROJECT_ROOT / "conf/base" / name).read_text()))

    assert keys("parameters_evaluate_cv.yml") == {"evaluate_cv"}
    assert {"extraction", "rich_features", "execution", "split", "augmentation"} == keys(
        "parameters_data_processing.yml")
    assert {"rich_features", "degraded_features", "features", "spectrograms"} <= keys(
        "catalog_data_processing.yml")
    assert keys("catalog_ensemble.yml") == {"ensemble.model"}
    assert {"model_selection", "holdout_audio", "other_artist_metrics"} <= keys(
        "catalog_model_selection.yml")
    assert all(k.startswith(("cv_", "musicnn_embeddings_latest"))
               for k in keys("catalog_evaluate_cv.yml"))
