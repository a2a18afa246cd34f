"""Signal → model input → genre probabilities, for every model kind; used by the prediction API.

Nothing here knows about Kedro or HTTP: the API loads the models through the catalog and hands
them over as :class:`LoadedModel` objects. Each model name maps to an :class:`InputBuilder`
that turns decoded audio into the exact input the model was trained on, calling the same
functions the pipelines call (:mod:`music_genre.audio`, :mod:`music_genre.transfer.embed`):

* ``rf``, ``rf_robust``, ``mlp``: the 57 features of :func:`music_genre.audio.analyse`, or for a
  model trained on the rich table (``input_spec_`` on the model) those columns of
  :func:`music_genre.audio.rich_features` — of the audio after :func:`music_genre.audio.degrade`
  for a model that reads a band-limited copy (``rf_robust``) — as float32 rows (what
  :func:`music_genre.models.training.select` gives the models in training);
* ``cnn``: the min-max normalised dB mel spectrogram, stored as float16 by the data-processing
  pipeline, so it is rounded through float16 here too, shaped ``(n_mels, n_frames, 1)``;
* ``transfer``: the pretrained networks' outputs per 3 s patch of the 16 kHz signal (the row
  ``params:musicnn`` describes: patches side by side + a tag-name genre prior), computed by
  :class:`music_genre.transfer.serving.TransferService` (the embedding node's functions; the
  pretrained networks come from the catalog as ``musicnn_network``), then the head; at most
  ``musicnn.serving.max_chunks`` 30 s chunks per upload.

Length policy: audio shorter than ``min_duration_s`` is refused; anything longer is cut into
consecutive ``duration_s`` windows (:func:`music_genre.audio.windows`: the last partial window is
looped like a short training clip) and the windows' probabilities are averaged.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from music_genre import audio
from music_genre.models import training


class InputError(ValueError):
    """Audio that decodes but cannot be analysed (too short, ...); the message says why."""


@dataclass
class LoadedModel:
    """A trained model ready to serve: the object itself plus what the API reports about it."""

    name: str
    model: Any
    version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_version: str | None = None
    #: extra objects an input builder needs (the MusiCNN network for ``transfer``)
    extras: dict[str, Any] = field(default_factory=dict)
    # Keras models and sklearn estimators are not documented as safe for concurrent calls;
    # inference itself is a small part of a request (the analysis runs outside the lock).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def accuracy(self) -> float | None:
        value = self.metrics.get("accuracy")
        return float(value) if value is not None else None


@dataclass
class ModelInput:
    """A batch of model inputs, one row per analysed window."""

    x: np.ndarray
    n_windows: int
    #: dB mel spectrogram of the first window (for display), when it was computed anyway
    mel_db: np.ndarray | None = None


@dataclass
class InputBuilder:
    """How one model kind turns audio into its input."""

    #: rate the audio is decoded at for this kind
    sample_rate: Callable[[audio.ExtractionParams, dict[str, Any]], int]
    #: (signal at that rate, extraction params, model extras) → model input batch
    build: Callable[[np.ndarray, audio.ExtractionParams, LoadedModel], ModelInput]
    #: which ``kedro run --pipeline ...`` trains the model
    pipeline: str


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """Context: analyse with one BLAS thread, as the pipelines do for every track
    (``audio._cache_entry``): multi-threaded OpenBLAS sums in another order, and a file must
    give the model the very numbers it would have had in training."""
    return _threadpools().limit(limits=1, user_api="blas")


def pin_blas_threads() -> None:
    """One BLAS thread for the whole process (the service: requests run in parallel threads
    instead; a per-call limit would race between threads)."""
    _threadpools().limit(limits=1, user_api="blas")


def feature_rows(y: np.ndarray, params: audio.ExtractionParams) -> ModelInput:
    """The 57 features of each window, float64 (as stored in the ``features`` table)."""
    rows, first_mel = [], None
    for window in audio.windows(y, params):
        with one_blas_thread():
            result = audio.analyse(window, params)
        rows.append(result.features)
        if first_mel is None:
            first_mel = result.mel_db
    return ModelInput(np.vstack(rows), len(rows), first_mel)


def spectrogram_batch(y: np.ndarray, params: audio.ExtractionParams) -> ModelInput:
    """Each window's normalised mel spectrogram exactly as the pipeline stores it (float16),
    shape ``(n_windows, n_mels, n_frames)``."""
    specs, first_mel = [], None
    for window in audio.windows(y, params):
        with one_blas_thread():
            mel_db = audio.analyse(window, params, with_features=False).mel_db
        specs.append(audio.normalise_spectrogram(mel_db).astype(np.float16))
        if first_mel is None:
            first_mel = mel_db
    return ModelInput(np.stack(specs), len(specs), first_mel)


def rich_rows(y: np.ndarray, params: audio.ExtractionParams, columns: Sequence[str],
              segment_s: float, degradation: str | None = None) -> ModelInput:
    """The ``columns`` of :func:`music_genre.audio.rich_features` for each window (the
    ``rich_features`` table's computation), after the chain ``degradation`` when the model reads
    a band-limited copy (``input_degradation``: the ``degraded_features`` table's computation)."""
    names = audio.rich_feature_names(params, segment_s)
    index = [names.index(c) for c in columns]
    rows = []
    for window in audio.windows(y, params):
        with one_blas_thread():
            if degradation:
                window = audio.degrade(window, params.sample_rate, degradation)
            rows.append(audio.rich_features(window, params, segment_s)[index])
    return ModelInput(np.vstack(rows), len(rows))


def _features_input(y, params, loaded: LoadedModel) -> ModelInput:
    # the columns a model was trained on and the chain its input went through (training nodes'
    # input spec: pickled with a scikit-learn model, in the metrics of the run for a Keras one)
    spec = getattr(loaded.model, "input_spec_", None) or loaded.metrics.get("input_spec")
    if spec and (list(spec["columns"]) != list(audio.FEATURE_NAMES) or spec.get("degradation")):
        rows = rich_rows(y, params, spec["columns"], float(spec.get("rich_segment_s") or 0.0),
                         spec.get("degradation"))
    else:
        rows = feature_rows(y, params)
    rows.x = rows.x.astype(np.float32)  # training.select hands the models float32
    return rows


def _cnn_input(y, params, loaded: LoadedModel) -> ModelInput:
    batch = spectrogram_batch(y, params)
    batch.x = batch.x.astype(np.float32)[..., None]  # training.spectrogram_batches does this
    return batch


def _transfer_chunks(y: np.ndarray, sample_rate: int, duration_s: float,
                     min_duration_s: float, max_chunks: int | None = None) -> list[np.ndarray]:
    """Consecutive ``duration_s`` chunks, not padded: the transfer pipeline embeds each file's
    first ``duration_s`` as it is (MusiCNN averages over its 3 s patches; a chunk shorter than
    one patch is looped to one, as a 2-3 s clip is). At most ``max_chunks``, evenly spread over
    a long upload, so the work per request is bounded (``musicnn.serving.max_chunks``)."""
    n = int(round(duration_s * sample_rate))
    keep = sample_rate * min_duration_s
    chunks = [y[s : s + n] for s in range(0, len(y), n)]
    chunks = [c for i, c in enumerate(chunks) if i == 0 or len(c) >= keep]
    if max_chunks and len(chunks) > max_chunks:
        pick = np.unique(np.linspace(0, len(chunks) - 1, int(max_chunks)).round().astype(int))
        chunks = [chunks[i] for i in pick]
    return chunks


def _transfer_input(y, params, loaded: LoadedModel) -> ModelInput:
    # music_genre.transfer.serving.TransferService: the embedding node's own functions
    service = loaded.extras["transfer_service"]
    embed = service.params
    chunks = _transfer_chunks(y, embed.sample_rate, embed.duration_s or params.duration_s,
                              params.min_duration_s,
                              (service.musicnn.get("serving") or {}).get("max_chunks"))
    with loaded.lock:  # the network is a Keras model too
        rows = [service.features(chunk) for chunk in chunks]
    return ModelInput(np.vstack(rows).astype(np.float32), len(chunks))


def _transfer_rate(params: audio.ExtractionParams, extras: dict[str, Any]) -> int:
    return int(extras["transfer_service"].params.sample_rate)


def _extraction_rate(params: audio.ExtractionParams, extras: dict[str, Any]) -> int:
    return params.sample_rate


#: model name → how it gets its input. A new model kind is one more entry here.
INPUT_BUILDERS: dict[str, InputBuilder] = {
    "rf": InputBuilder(_extraction_rate, _features_input, "rf"),
    "rf_robust": InputBuilder(_extraction_rate, _features_input, "rf_robust"),
    "mlp": InputBuilder(_extraction_rate, _features_input, "mlp"),
    "cnn": InputBuilder(_extraction_rate, _cnn_input, "cnn"),
    "transfer": InputBuilder(_transfer_rate, _transfer_input, "transfer"),
}
#: every servable name: the builders' models, then the ensemble of some of them (its bundle says
#: which; served after its members are loaded)
MODEL_NAMES: list[str] = [*INPUT_BUILDERS, "ensemble"]


def loaded_model(name: str, model: Any, metrics: dict[str, Any] | None, params: dict[str, Any],
                 network: Any = None, version: str | None = None,
                 metrics_version: str | None = None) -> LoadedModel:
    """A trained model ready to predict: the service and the pipelines' other-artist evaluation
    build it the same way (``network``: the MusiCNN network, for ``transfer``)."""
    extras: dict[str, Any] = {}
    if name == "transfer":
        from music_genre.transfer.serving import TransferService

        if network is None:
            raise ValueError("transfer needs the MusiCNN network (musicnn_network)")
        extras["transfer_service"] = TransferService(
            network=network, head=model, genres=params["genres"],
            musicnn=params.get("musicnn") or {})
    return LoadedModel(name, model, version, dict(metrics or {}), metrics_version, extras)


def ensemble_model(bundle: dict[str, Any], members: dict[str, LoadedModel],
                   metrics: dict[str, Any] | None = None,
                   version: str | None = None) -> LoadedModel:
    """The served ensemble: its bundle (members, weights) over the loaded member models; refused
    with the missing names when a member is not loaded."""
    weights = {m: float(w) for m, w in bundle["members"].items() if float(w) > 0}
    missing = sorted(set(weights) - set(members))
    if missing:
        raise LookupError(f"the ensemble needs {missing}, which are not loaded (api.models)")
    return LoadedModel("ensemble", bundle, version, dict(metrics or {}), None,
                       {"members": {m: members[m] for m in weights}, "weights": weights})


@dataclass
class Prediction:
    genre: str
    probabilities: dict[str, float]
    window_probabilities: np.ndarray  # (n_windows, n_genres)
    duration_s: float  # length of the decoded audio
    analysed_s: float  # audio covered by the analysed windows
    n_windows: int
    seconds: float  # decode + analysis + inference
    mel_db: np.ndarray | None = None


def decode(data: bytes, sample_rate: int, name: str = "uploaded file") -> np.ndarray:
    """Decoded mono float32 at ``sample_rate``; :class:`music_genre.audio.AudioError` if it
    is not decodable audio."""
    return audio.load_audio(data, sr=sample_rate, name=name)


def check_duration(y: np.ndarray, sample_rate: int, min_duration_s: float,
                   name: str = "uploaded file") -> float:
    duration = len(y) / sample_rate
    if duration < min_duration_s:
        raise InputError(
            f"{name}: only {duration:.2f} s of audio; at least {min_duration_s:g} s are needed "
            "to recognise a genre"
        )
    return duration


def predict_signal(y: np.ndarray, loaded: LoadedModel, params: audio.ExtractionParams,
                   genres: Sequence[str], name: str = "uploaded file") -> Prediction:
    """Probabilities of a signal already decoded at the model kind's sample rate."""
    builder = INPUT_BUILDERS[loaded.name]
    start = time.perf_counter()
    duration = check_duration(y, builder.sample_rate(params, loaded.extras),
                              params.min_duration_s, name)
    batch = builder.build(y, params, loaded)
    with loaded.lock:
        if hasattr(loaded.model, "predict_proba"):  # sklearn: the evaluation node's function
            proba = training.predict_proba(loaded.model, batch.x, len(genres))
        elif batch.x.ndim == 4:  # CNN: whole-track or segment model (windows averaged)
            proba = training.predict_segments(loaded.model, batch.x)
        else:  # Keras: one compiled call, without predict()'s per-call data pipeline
            proba = loaded.model.predict_on_batch(batch.x)
    proba = np.asarray(proba, dtype=np.float64).reshape(batch.n_windows, len(genres))
    mean = proba.mean(axis=0)
    return Prediction(
        genre=str(genres[int(mean.argmax())]),
        probabilities={g: float(p) for g, p in zip(genres, mean, strict=True)},
        window_probabilities=proba,
        duration_s=duration,
        analysed_s=min(duration, batch.n_windows * params.duration_s),
        n_windows=batch.n_windows,
        seconds=time.perf_counter() - start,
        mel_db=batch.mel_db,
    )


def _predict_ensemble(data: bytes, loaded: LoadedModel, params: audio.ExtractionParams,
                      genres: Sequence[str], name: str) -> Prediction:
    """Each member's prediction of the file (its own input, as served alone), averaged with the
    bundle's weights: the evaluation node's :func:`music_genre.evaluation.average_probabilities`
    on the members' test probabilities."""
    start = time.perf_counter()
    weights = loaded.extras["weights"]
    parts = {m: predict_bytes(data, member, params, genres, name)
             for m, member in loaded.extras["members"].items()}
    total = sum(weights.values())
    mean = sum(weights[m] * np.array([p.probabilities[g] for g in genres])
               for m, p in parts.items()) / total
    first = next(iter(parts.values()))
    mel = next((p.mel_db for p in parts.values() if p.mel_db is not None), None)
    return Prediction(
        genre=str(genres[int(mean.argmax())]),
        probabilities={g: float(p) for g, p in zip(genres, mean, strict=True)},
        window_probabilities=mean[None, :], duration_s=first.duration_s,
        analysed_s=max(p.analysed_s for p in parts.values()),
        n_windows=max(p.n_windows for p in parts.values()),
        seconds=time.perf_counter() - start, mel_db=mel)


def predict_bytes(data: bytes, loaded: LoadedModel, params: audio.ExtractionParams,
                  genres: Sequence[str], name: str = "uploaded file") -> Prediction:
    """Decode an uploaded file and predict its genre with ``loaded``."""
    if "members" in loaded.extras:
        return _predict_ensemble(data, loaded, params, genres, name)
    start = time.perf_counter()
    y = decode(data, INPUT_BUILDERS[loaded.name].sample_rate(params, loaded.extras), name)
    prediction = predict_signal(y, loaded, params, genres, name)
    prediction.seconds = time.perf_counter() - start
    return prediction


def first_window_mel(data: bytes, params: audio.ExtractionParams) -> np.ndarray:
    """dB mel spectrogram of a file's first window (for kinds that do not compute one)."""
    y = decode(data, params.sample_rate)
    return audio.analyse(next(audio.windows(y, params)), params, with_features=False).mel_db


def display_spectrogram(mel_db: np.ndarray, time_pool: int = 4) -> np.ndarray:
    """A small uint8 image (n_mels × frames/time_pool, low frequencies in row 0) of a dB mel
    spectrogram, min-max scaled like the CNN's input, for the web page."""
    norm = audio.normalise_spectrogram(mel_db)
    frames = norm.shape[1] - norm.shape[1] % time_pool
    pooled = norm[:, :frames].reshape(norm.shape[0], -1, time_pool).mean(axis=2)
    return np.round(pooled * 255).astype(np.uint8)
