"""One train → evaluate template, instantiated per model under its namespace.

``kedro run --pipeline rf|mlp|cnn`` runs one model (with the data processing it needs, see
``pipelines/<model>/``);
datasets are ``<model>.model``, ``<model>.metrics`` ... (catalog factories in
``conf/base/catalog_models.yml``) and parameters are ``params:<model>`` blocks.
"""

from kedro.pipeline import Node, Pipeline

from music_genre import roster

from .nodes import bundle_model, evaluate_model, train_model

# model namespace → the dataset it learns from: the roster's template models
# (rf reads the rich table, 57 + 109 columns; `kedro run --env reference` makes it read the
# reference's 57 of them; rf_robust: the same forest on the band-limited copy of every track)
MODELS = roster.template_models()
# models on feature tables can learn from degraded copies of their training tracks or read a
# band-limited copy of every track (params:<model>.augment / .input_degradation; the
# `degraded_features` table of data processing)
AUGMENTABLE = {"rich_features", "features"}


def template(params: str = "params:model", augmentable: bool = False,
             embedding: bool = False) -> Pipeline:
    """train → bundle → evaluate; ``params`` names the model's parameter block (a ``params:``
    entry, or a dataset such as the tuning pipelines' best parameters). ``augmentable``: training
    and evaluation also read ``degraded`` (the copies ``augment`` / ``input_degradation`` ask
    for). ``embedding``: the model reads the pretrained networks' features, and its bundle
    carries ``params:musicnn`` (how they are computed)."""
    train_inputs = ["model_input", "split", params, "params:genres", "params:seed"]
    return Pipeline([
        Node(train_model, train_inputs + (["degraded"] if augmentable else []),
             ["trained_model", "train_info"], name="train_model"),
        # the model + its serving contract (catalog: one `{model}.model` bundle per model)
        Node(bundle_model, ["trained_model", "train_info", params, "params:genres",
                            "params:extraction"] + (["params:musicnn"] if embedding else []),
             "model", name="bundle_model"),
        Node(evaluate_model,
             ["model", "model_input", "split", "train_info", params, "params:genres"]
             + (["degraded"] if augmentable else []),
             ["metrics", "per_genre", "predictions", "confusion_matrix", "training_curves"],
             name="evaluate_model"),
    ])


def model_pipeline(name: str, model_input: str) -> Pipeline:
    augmentable = model_input in AUGMENTABLE
    embedding = roster.spec(name).family == "embedding"
    return Pipeline(
        template(augmentable=augmentable, embedding=embedding),
        namespace=name,
        inputs={"model_input": model_input, "split": "split",
                **({"degraded": "degraded_features"} if augmentable else {})},
        parameters={"params:model": f"params:{name}", "params:genres": "params:genres",
                    "params:seed": "params:seed", "params:extraction": "params:extraction",
                    **({"params:musicnn": "params:musicnn"} if embedding else {})},
    )


def single_model_pipeline(name: str) -> Pipeline:
    """``kedro run --pipeline <name>``: one template model with the data processing it needs
    (cached extraction makes that part take seconds once it has run)."""
    from music_genre.pipelines import data_processing

    return data_processing.create_pipeline() + model_pipeline(name,
                                                              roster.template_models()[name])


def create_pipeline(**kwargs) -> Pipeline:
    """All template-based models at once (``kedro run --pipeline training``)."""
    return sum((model_pipeline(name, source)
                for name, source in roster.template_models().items()), Pipeline([]))
