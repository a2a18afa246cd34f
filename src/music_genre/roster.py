"""The one model roster: every model the project trains, reports, ensembles, cross-validates and
serves, in one table. Everything that iterates over models derives its list from here (the
pipeline registry, the training template, the ensemble, reporting, model selection, the service).

Adding a model = one row here + its parameter block ``params:<name>`` (``kind`` picks the builder
in :mod:`music_genre.models.builders`) + an ``evaluate_cv.variants.<name>`` entry to rank it by
grouped CV (+ ``params:tuning.<name>`` and ``tunable=True`` for a ``tune_<name>`` pipeline).
No Kedro here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    #: how the service turns audio into its input (:data:`music_genre.inference.FAMILY_BUILDERS`):
    #: ``table`` (feature columns of the rich/57-feature computation, chain from the model's
    #: input spec), ``spectrogram`` (mel windows), ``embedding`` (pretrained MusiCNN features),
    #: ``ensemble`` (its members)
    family: str
    #: the dataset the train → evaluate template reads (None: built by its own pipeline)
    input: str | None
    #: which pipeline package builds it: the shared ``template``, or its own folder
    builder: str = "template"
    #: averaged by the ensemble (rf_robust is the band-limited twin of rf: not another opinion)
    ensemble: bool = True
    #: ``kedro run --pipeline tune_<name>`` exists (an Optuna study over
    #: ``params:tuning.<name>.space``, on the same input table the model trains on)
    tunable: bool = False


ROSTER: list[ModelSpec] = [
    ModelSpec("rf", "table", "rich_features", tunable=True),
    ModelSpec("rf_robust", "table", "rich_features", ensemble=False),
    ModelSpec("mlp", "table", "features", tunable=True),
    ModelSpec("cnn", "spectrogram", "spectrograms", tunable=True),
    ModelSpec("transfer", "embedding", "musicnn_features", builder="transfer"),
    ModelSpec("ensemble", "ensemble", None, builder="ensemble", ensemble=False),
]


def spec(name: str) -> ModelSpec:
    for row in ROSTER:
        if row.name == name:
            return row
    raise KeyError(f"'{name}' is not in the model roster (music_genre.roster.ROSTER): "
                   f"{names()}")


def names() -> list[str]:
    """Every model: trained, reported, ranked and served (the ensemble last)."""
    return [m.name for m in ROSTER]


def template_models() -> dict[str, str]:
    """Models built by the shared train → evaluate template: name → the dataset it reads."""
    return {m.name: m.input for m in ROSTER if m.builder == "template"}


def tunable_models() -> list[str]:
    """Models with a tuning pipeline ``tune_<name>``."""
    return [m.name for m in ROSTER if m.tunable]


def ensemble_members() -> list[str]:
    return [m.name for m in ROSTER if m.ensemble]


def single_models() -> list[str]:
    """Every model but the ensemble (each has its own ``.model`` and input builder)."""
    return [m.name for m in ROSTER if m.family != "ensemble"]
