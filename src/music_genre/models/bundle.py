"""The model bundle: a trained model saved WITH its serving contract.

A bundle is a folder (the ``{model}.model`` catalog entry, versioned like every model):

* ``contract.json``: everything needed to turn audio into this model's input and read its
  answer (see :func:`contract`): the bundle format, the model's family
  (:mod:`music_genre.models.families`), its genres in output order, the extraction parameters it
  was trained with (sample rate, n_fft, hop, n_mels, n_mfcc, window length, ...), and per input:
  the feature columns, the rich-feature segment length and the degradation chain (tables), the
  spectrogram shape and segment window (spectrograms), the pretrained networks, their weights,
  the genre prior and the patching (embeddings);
* ``model.joblib`` or ``model.keras``: the model in its family's save format.

The prediction service, the classify pipeline and model selection read the contract, never
today's ``conf/``: a model trained with ``n_mels: 128`` keeps getting 128 mel bands after the
conf says 64. :func:`check` refuses a bundle this code cannot serve faithfully (another format,
another embedding code) with a message that names the difference and the retrain command.

No Kedro here (:class:`music_genre.bundle_dataset.ModelBundleDataset` is the catalog side).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bump when the contract's meaning changes; older bundles are refused with a retrain command.
BUNDLE_FORMAT = 1
CONTRACT_FILE = "contract.json"


class IncompatibleBundle(ValueError):
    """A bundle this code cannot serve as it was trained; the message says why and what to run."""


@dataclass
class ModelBundle:
    """A trained model and its serving contract (a JSON-able dict, :func:`contract`)."""

    model: Any
    contract: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.contract["family"])

    @property
    def genres(self) -> list[str]:
        return list(self.contract["genres"])


def contract(name: str, family: str, genres: Sequence[str], extraction: Mapping[str, Any],
             input_spec: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The serving contract of model ``name``: ``extraction`` is the ``params:extraction`` block
    of the training run (every key of :class:`music_genre.audio.ExtractionParams`), ``input_spec``
    what the family's input builder needs beyond it (columns / spectrogram shape / networks)."""
    from music_genre import __version__, audio

    return {
        "format": BUNDLE_FORMAT,
        "model": name,
        "family": family,
        "genres": [str(g) for g in genres],
        "extraction": audio.ExtractionParams.from_dict(extraction).as_dict(),
        "input": dict(input_spec or {}),
        "package_version": __version__,
        # this training's identity: an ensemble records its members' ids and is served over
        # exactly those members, even after one of them is retrained
        "bundle_id": uuid.uuid4().hex,
        **extra,
    }


def retrain_command(name: str, env: str | None = None) -> str:
    from music_genre import roster

    try:
        pipeline = name if roster.spec(name).builder == "template" else roster.spec(name).builder
    except KeyError:  # tuned models: rf_tuned → tune_rf
        pipeline = f"tune_{name.removesuffix('_tuned')}" if name.endswith("_tuned") else name
    return f"kedro run --pipeline {pipeline}" + (
        f" --env {env}" if env and env not in ("local", "base") else "")


def check(bundle: ModelBundle, name: str, env: str | None = None) -> ModelBundle:
    """``bundle`` if this code can serve it as trained, else :class:`IncompatibleBundle`
    naming what differs and the command that retrains ``name``."""
    from music_genre.models import families

    c = bundle.contract or {}
    fix = f"retrain it: `{retrain_command(name, env)}`"
    if c.get("format") != BUNDLE_FORMAT:
        raise IncompatibleBundle(
            f"model '{name}': bundle format {c.get('format')!r}, this code reads format "
            f"{BUNDLE_FORMAT}; {fix}")
    missing = [k for k in ("family", "genres", "extraction", "input") if k not in c]
    if missing:
        raise IncompatibleBundle(f"model '{name}': its contract lacks {missing}; {fix}")
    if c["family"] not in families.FAMILIES:
        raise IncompatibleBundle(f"model '{name}': unknown family {c['family']!r} (this code "
                                 f"knows {sorted(families.FAMILIES)}); {fix}")
    if c["family"] == families.EMBEDDING_HEAD.name:
        from music_genre.transfer.serving import contract_differences

        differs = contract_differences(c["input"])
        if differs:
            raise IncompatibleBundle(f"model '{name}': its embedding was computed with "
                                     f"{'; '.join(differs)}; {fix}")
    return bundle


def conf_differences(c: Mapping[str, Any], extraction: Mapping[str, Any] | None) -> list[str]:
    """Where today's ``params:extraction`` differs from a bundle's (``n_mels: 128 in the bundle,
    64 in conf``): the service logs them and serves the bundle's values."""
    if not extraction:
        return []
    from music_genre import audio

    now = audio.ExtractionParams.from_dict(extraction).as_dict()
    was = c.get("extraction") or {}
    return [f"{k}: {was.get(k)!r} in the bundle, {now[k]!r} in conf" for k in sorted(now)
            if k != "min_duration_s" and was.get(k) != now[k]]


# ------------------------------------------------------------------------------------------
# On disk: a folder with contract.json and model.joblib / model.keras
# ------------------------------------------------------------------------------------------


def _is_keras(model: Any) -> bool:
    return any(c.__module__.startswith("keras") for c in type(model).__mro__)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a :class:`ModelBundle` (or a bare model: ``contract.json`` then says
    ``"bare": true`` and it loads back bare) to the folder ``path``, atomically."""
    from music_genre.models import families

    path = Path(path)
    if isinstance(obj, ModelBundle):
        model, meta = obj.model, dict(obj.contract)
        fmt = families.get(obj.family).save_format if meta.get("family") else None
    else:
        model, meta, fmt = obj, {"format": BUNDLE_FORMAT, "bare": True}, None
    fmt = fmt or ("keras" if _is_keras(model) else "joblib")
    meta["file"] = f"model.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if fmt == "keras":
            model.save(tmp / meta["file"])
        else:
            import joblib

            joblib.dump(model, tmp / meta["file"])
        (tmp / CONTRACT_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)  # a crash never leaves half a bundle
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load(path: str | os.PathLike) -> Any:
    """A :class:`ModelBundle` (or the bare model that was saved) from the folder ``path``;
    ``.keras`` files load under Keras' ``safe_mode``."""
    path = Path(path)
    meta = json.loads((path / CONTRACT_FILE).read_text())
    file = path / meta.get("file", "model.joblib")
    if file.suffix == ".keras":
        import keras

        import music_genre.models.specaugment  # noqa: F401  (registers SpecAugment)

        model = keras.saving.load_model(str(file), safe_mode=True)
    else:
        import joblib

        model = joblib.load(file)
    if meta.get("bare"):
        return model
    meta.pop("file", None)
    return ModelBundle(model, meta)


def read_contract(path: str | os.PathLike) -> dict[str, Any]:
    """The contract alone (no model loaded)."""
    return json.loads((Path(path) / CONTRACT_FILE).read_text())


def trained_bundle(model: Any, train_info: Mapping[str, Any], params: Mapping[str, Any],
                   genres: Sequence[str], extraction: Mapping[str, Any],
                   musicnn: Mapping[str, Any] | None = None) -> ModelBundle:
    """The bundle of a model the training template just fitted: its family from its input
    (``musicnn`` given: the pretrained-network features; ``train_info['input_spec']``: a feature
    table; else spectrograms) and ``params['kind']``, and the contract of that input."""
    from music_genre.models import families

    name = str(params.get("name", params["kind"]))
    if musicnn is not None:
        from music_genre.transfer.serving import embedding_contract

        input_kind, spec = "embedding", embedding_contract(musicnn)
    elif train_info.get("input_spec"):
        input_kind, spec = "table", dict(train_info["input_spec"])
    else:
        shape = list(model.input_shape[1:3])  # (n_mels, frames seen at once)
        input_kind = "spectrogram"
        spec = {"n_mels": shape[0], "window_frames": shape[1],
                "values": "min-max normalised dB mel, rounded through float16"}
    family = families.family_for(input_kind, str(params["kind"]))
    return ModelBundle(model, contract(name, family.name, genres, extraction, spec,
                                       kind=str(params["kind"])))


__all__ = ["BUNDLE_FORMAT", "IncompatibleBundle", "ModelBundle", "check", "conf_differences",
           "contract", "load", "retrain_command", "save", "trained_bundle"]
