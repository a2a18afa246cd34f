"""Signal → model input → genre probabilities, for every model kind; used by the prediction API.

Nothing here knows about Kedro or HTTP: the API loads the models' bundles through the catalog
and hands them over as :class:`LoadedModel` objects. A model's bundle
(:mod:`music_genre.models.bundle`) is its serving contract: its family
(:mod:`music_genre.models.families`) names the :class:`InputBuilder` that turns decoded audio
into the exact input the model was trained on, with the extraction parameters, columns,
degradation chain and networks the contract records — never today's conf — calling the same
functions the pipelines call (:mod:`music_genre.audio`, :mod:`music_genre.transfer.embed`):

* ``table`` (sklearn-table, keras-table: rf, rf_robust, mlp): the 57 features of
  :func:`music_genre.audio.analyse`, or the contract's columns of
  :func:`music_genre.audio.rich_features` — of the audio after :func:`music_genre.audio.degrade`
  when the contract names a chain (``rf_robust``) — as float32 rows (what
  :func:`music_genre.models.training.select` gives the models in training);
* ``spectrogram`` (keras-spectrogram: cnn): the min-max normalised dB mel spectrogram, stored as
  float16 by the data-processing pipeline, so it is rounded through float16 here too, shaped
  ``(n_mels, n_frames, 1)``;
* ``embedding`` (embedding-head: transfer): the pretrained networks' outputs per 3 s patch of
  the 16 kHz signal (the row the contract's ``musicnn`` recipe describes: patches side by side +
  a tag-name genre prior), computed by :class:`music_genre.transfer.serving.TransferService`
  (the embedding node's functions; the pretrained networks come from the catalog as
  ``musicnn_network``, checked against the contract), then the head; at most
  ``musicnn.serving.max_chunks`` 30 s chunks per upload.

Length policy: audio shorter than ``min_duration_s`` is refused; anything longer is cut into
consecutive ``duration_s`` windows (:func:`music_genre.audio.windows`: the last partial window is
looped like a short training clip) and the windows' probabilities are averaged.

Input policy (:class:`InputPolicy`, the service's ``api:`` settings): an upload is decoded as a
stream and only its first ``max_analysed_s`` seconds (and at most ``max_decoded_samples``
samples) are decoded at all (:func:`music_genre.audio.decode_bounded`), so a request costs
O(bound) whatever the file's length or encoding; the answer says how much was analysed. Audio
whose level is below ``silence_floor_dbfs`` is refused (:class:`SilentAudio`), and silent
windows inside a track are left out of the average.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from music_genre import audio, roster
from music_genre.models import bundle as bundles
from music_genre.models import families
from music_genre.selection import FIGURES


class InputError(ValueError):
    """Audio that decodes but cannot be analysed (too short, ...); the message says why."""


class SilentAudio(InputError):
    """Audio below the silence floor: nothing to recognise."""


@dataclass(frozen=True)
class InputPolicy:
    """What the service agrees to analyse of one upload (``None``: no bound)."""

    #: seconds decoded and analysed from the start of a file (the rest is never decoded)
    max_analysed_s: float | None = None
    #: hard cap on decoded samples, all channels counted (a 384 kHz 8-channel file gets less)
    max_decoded_samples: int | None = None
    #: RMS level (dBFS) under which audio counts as silence: the whole upload → 422,
    #: a window inside a track → left out of the average
    silence_floor_dbfs: float | None = None
    #: shortest audio accepted (None: the model's own, from its bundle's extraction)
    min_duration_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> InputPolicy:
        def number(key, kind=float):
            value = getattr(settings, key, None)
            return None if value is None else kind(value)

        return cls(number("max_analysed_s"), number("max_decoded_samples", int),
                   number("silence_floor_dbfs"), number("min_duration_s"))


@dataclass
class LoadedModel:
    """A trained model ready to serve: the object itself, its serving contract (from its bundle)
    and what the API reports about it."""

    name: str
    model: Any
    version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_version: str | None = None
    #: extra objects an input builder needs (the MusiCNN network for ``transfer``)
    extras: dict[str, Any] = field(default_factory=dict)
    #: the bundle's contract (:func:`music_genre.models.bundle.contract`): family, genres,
    #: extraction parameters, input spec
    contract: dict[str, Any] = field(default_factory=dict)
    # Keras models and sklearn estimators are not documented as safe for concurrent calls;
    # inference itself is a small part of a request (the analysis runs outside the lock).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # to worker processes (the classify pipeline): everything but the lock, which each
        # process makes its own
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, lock=threading.Lock())

    @property
    def extraction(self) -> audio.ExtractionParams:
        """The extraction parameters the model was trained with (its bundle's)."""
        return audio.ExtractionParams.from_dict(self.contract["extraction"])

    @property
    def genres(self) -> list[str]:
        """The model's classes, in the order of its probabilities."""
        return list(self.contract["genres"])

    @property
    def family(self) -> families.Family | None:
        name = self.contract.get("family")
        return families.get(name) if name in families.FAMILIES else None

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
    #: RMS level (dBFS) of each window's audio, for leaving silent windows out of the average
    levels_db: np.ndarray | None = None


@dataclass
class InputBuilder:
    """How one model kind turns audio into its input."""

    #: rate the audio is decoded at for this kind
    sample_rate: Callable[[audio.ExtractionParams, dict[str, Any]], int]
    #: (signal at that rate, extraction params, model extras) → model input batch
    build: Callable[[np.ndarray, audio.ExtractionParams, LoadedModel], ModelInput]


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """Context: analyse with one BLAS thread, as the pipelines do for every track
    (``audio.track_entry``): multi-threaded OpenBLAS sums in another order, and a file must
    give the model the very numbers it would have had in training."""
    return _threadpools().limit(limits=1, user_api="blas")


def pin_blas_threads() -> None:
    """One BLAS thread for the whole process (the service: requests run in parallel threads
    instead; a per-call limit would race between threads)."""
    _threadpools().limit(limits=1, user_api="blas")


def feature_rows(y: np.ndarray, params: audio.ExtractionParams) -> ModelInput:
    """The 57 features of each window, float64 (as stored in the ``features`` table)."""
    rows, first_mel, levels = [], None, []
    for window in audio.windows(y, params):
        levels.append(audio.level_dbfs(window))
        with one_blas_thread():
            result = audio.analyse(window, params)
        rows.append(result.features)
        if first_mel is None:
            first_mel = result.mel_db
    return ModelInput(np.vstack(rows), len(rows), first_mel, np.array(levels))


def spectrogram_batch(y: np.ndarray, params: audio.ExtractionParams) -> ModelInput:
    """Each window's normalised mel spectrogram exactly as the pipeline stores it (float16),
    shape ``(n_windows, n_mels, n_frames)``."""
    specs, first_mel, levels = [], None, []
    for window in audio.windows(y, params):
        levels.append(audio.level_dbfs(window))
        with one_blas_thread():
            mel_db = audio.analyse(window, params, with_features=False).mel_db
        specs.append(audio.normalise_spectrogram(mel_db).astype(np.float16))
        if first_mel is None:
            first_mel = mel_db
    return ModelInput(np.stack(specs), len(specs), first_mel, np.array(levels))


def rich_rows(y: np.ndarray, params: audio.ExtractionParams, columns: Sequence[str],
              segment_s: float, degradation: str | None = None) -> ModelInput:
    """The ``columns`` of :func:`music_genre.audio.rich_features` for each window (the
    ``rich_features`` table's computation), after the chain ``degradation`` when the model reads
    a band-limited copy (``input_degradation``: the ``degraded_features`` table's computation)."""
    names = audio.rich_feature_names(params, segment_s)
    index = [names.index(c) for c in columns]
    rows, levels = [], []
    for window in audio.windows(y, params):
        levels.append(audio.level_dbfs(window))
        with one_blas_thread():
            if degradation:
                window = audio.degrade(window, params.sample_rate, degradation)
            rows.append(audio.rich_features(window, params, segment_s)[index])
    return ModelInput(np.vstack(rows), len(rows), levels_db=np.array(levels))


def _features_input(y, params, loaded: LoadedModel) -> ModelInput:
    # the columns a model was trained on and the chain its input went through (its contract)
    spec = loaded.contract.get("input")
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
    return ModelInput(np.vstack(rows).astype(np.float32), len(chunks),
                      levels_db=np.array([audio.level_dbfs(c) for c in chunks]))


def _transfer_rate(params: audio.ExtractionParams, extras: dict[str, Any]) -> int:
    return int(extras["transfer_service"].params.sample_rate)


def _extraction_rate(params: audio.ExtractionParams, extras: dict[str, Any]) -> int:
    return params.sample_rate


#: model input (``Family.input`` of :mod:`music_genre.models.families`; the roster's ``family``)
#: → how audio becomes that input. A new kind of input is one more entry here.
FAMILY_BUILDERS: dict[str, InputBuilder] = {
    "table": InputBuilder(_extraction_rate, _features_input),
    "spectrogram": InputBuilder(_extraction_rate, _cnn_input),
    "embedding": InputBuilder(_transfer_rate, _transfer_input),
}


def input_builder(model: str | LoadedModel) -> InputBuilder:
    """How a loaded model gets its input (its bundle's family), or a roster model ``name``'s
    (its roster row's input)."""
    if isinstance(model, LoadedModel):
        if model.family is None:
            raise ValueError(f"model '{model.name}' has no family in its contract")
        return FAMILY_BUILDERS[model.family.input]
    return FAMILY_BUILDERS[roster.spec(model).family]


#: every servable name: the roster's models (the ensemble last: served over its members)
MODEL_NAMES: list[str] = roster.names()


def loaded_model(name: str, model: bundles.ModelBundle, metrics: dict[str, Any] | None = None,
                 network: Any = None, version: str | None = None,
                 metrics_version: str | None = None, env: str | None = None) -> LoadedModel:
    """A trained model's bundle ready to predict, as its contract says: the service, classify and
    the pipelines' other-artist evaluation build it the same way. ``network``: the pretrained
    networks (``musicnn_network``) for an embedding head, checked against its contract.
    :class:`music_genre.models.bundle.IncompatibleBundle` (naming what differs and the retrain
    command, ``env`` in it) for anything this code cannot serve as it was trained."""
    if not isinstance(model, bundles.ModelBundle):
        raise bundles.IncompatibleBundle(
            f"model '{name}' was saved without its serving contract ({type(model).__name__}, "
            f"not a bundle); retrain it: `{bundles.retrain_command(name, env)}`")
    bundles.check(model, name, env)
    contract = dict(model.contract)
    extras: dict[str, Any] = {}
    if contract["family"] == families.EMBEDDING_HEAD.name:
        from music_genre.transfer.serving import TransferService, contract_differences

        if network is None:
            raise ValueError(f"{name} needs the pretrained networks (musicnn_network)")
        differs = contract_differences(contract["input"], network)
        if differs:
            raise bundles.IncompatibleBundle(
                f"model '{name}': {'; '.join(differs)}; retrain it: "
                f"`{bundles.retrain_command(name, env)}`")
        extras["transfer_service"] = TransferService(
            network=network, head=model.model, genres=contract["genres"],
            musicnn=contract["input"]["musicnn"])
    return LoadedModel(name, model.model, version, dict(metrics or {}), metrics_version, extras,
                       contract=contract)


def ensemble_model(bundle: dict[str, Any], members: dict[str, LoadedModel],
                   metrics: dict[str, Any] | None = None,
                   version: str | None = None) -> LoadedModel:
    """The served ensemble: its bundle (members, weights) over the loaded member models; refused
    with the missing names when a member is not loaded, and when a member is not the training
    the bundle pinned (``member_bundles``: each member's ``bundle_id``)."""
    weights = {m: float(w) for m, w in bundle["members"].items() if float(w) > 0}
    missing = sorted(set(weights) - set(members))
    if missing:
        raise LookupError(f"the ensemble needs {missing}, which are not loaded (api.models)")
    chosen = {m: members[m] for m in weights}
    pinned = dict(bundle.get("member_bundles") or {})  # ensembles before pinning: none
    other = sorted(m for m, member in chosen.items()
                   if m in pinned and member.contract.get("bundle_id") != pinned[m])
    if other:
        raise bundles.IncompatibleBundle(
            f"the ensemble was built over other trainings of {other} than those given (they were "
            f"retrained since, and the trainings it averaged are no longer on disk); rebuild it: "
            f"`kedro run --pipelines ensemble,model_selection`")
    genres = {tuple(m.genres) for m in chosen.values()}
    if len(genres) != 1:
        raise bundles.IncompatibleBundle(
            f"the ensemble's members answer in different genre orders {sorted(genres)}; "
            f"retrain them: `{bundles.retrain_command('ensemble')}` after the members")
    first = next(iter(chosen.values()))
    contract = {"family": "ensemble", "genres": list(next(iter(genres))),
                "extraction": first.contract["extraction"], "members": list(chosen)}
    return LoadedModel("ensemble", bundle, version, dict(metrics or {}), None,
                       {"members": chosen, "weights": weights}, contract=contract)


@dataclass
class Prediction:
    genre: str
    probabilities: dict[str, float]
    window_probabilities: np.ndarray  # (n_windows, n_genres)
    duration_s: float  # length of the audio (the whole file's, when decoded with a bound)
    analysed_s: float  # audio covered by the windows whose probabilities were averaged
    n_windows: int  # windows averaged
    seconds: float  # decode + analysis + inference
    mel_db: np.ndarray | None = None
    silent_windows: int = 0  # windows below the silence floor, left out of the average
    truncated: bool = False  # only the first max_analysed_s of the file were decoded
    level_dbfs: float | None = None  # RMS level of the decoded audio
    band_limit_hz: float | None = None  # where the decoded audio's spectrum ends


def decode_upload(data: bytes, policy: InputPolicy | None = None,
                  name: str = "uploaded file") -> audio.DecodedAudio:
    """The beginning of an upload that the policy lets the service analyse, decoded once at
    its own rate (resample with :meth:`music_genre.audio.DecodedAudio.resampled`)."""
    policy = policy or InputPolicy()
    return audio.decode_bounded(data, policy.max_analysed_s, name, policy.max_decoded_samples)


def check_level(decoded: audio.DecodedAudio, policy: InputPolicy | None,
                name: str = "uploaded file") -> float:
    """The decoded audio's RMS level; :class:`SilentAudio` below the policy's floor."""
    level = audio.level_dbfs(decoded.y)
    floor = policy.silence_floor_dbfs if policy else None
    if floor is not None and level < floor:
        shown = "digital silence" if level == float("-inf") else f"{level:.1f} dBFS"
        raise SilentAudio(
            f"{name}: the audio is silent ({shown} over the {decoded.decoded_s:.1f} s analysed, "
            f"below the {floor:g} dBFS floor of api.silence_floor_dbfs); send a recording "
            "with music in its first seconds")
    return level


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


def model_extraction(loaded: LoadedModel,
                     min_duration_s: float | None = None) -> audio.ExtractionParams:
    """The extraction parameters of ``loaded``'s bundle; ``min_duration_s`` (the service's
    input policy) replaces the shortest audio accepted."""
    params = loaded.extraction
    if min_duration_s is not None:
        params = dataclasses.replace(params, min_duration_s=float(min_duration_s))
    return params


def sample_rate(loaded: LoadedModel) -> int:
    """The rate audio is decoded at for ``loaded`` (its bundle's)."""
    return input_builder(loaded).sample_rate(loaded.extraction, loaded.extras)


def predict_signal(y: np.ndarray, loaded: LoadedModel, name: str = "uploaded file",
                   silence_floor_dbfs: float | None = None,
                   min_duration_s: float | None = None) -> Prediction:
    """Probabilities of a signal already decoded at the model's sample rate
    (:func:`sample_rate`), its input computed as its bundle's contract says; windows below
    ``silence_floor_dbfs`` are left out of the mean (:class:`SilentAudio` if all are)."""
    builder = input_builder(loaded)
    params = model_extraction(loaded, min_duration_s)
    genres = loaded.genres
    start = time.perf_counter()
    duration = check_duration(y, builder.sample_rate(params, loaded.extras),
                              params.min_duration_s, name)
    batch = builder.build(y, params, loaded)
    with loaded.lock:  # the training side's function of the model's family
        proba = loaded.family.predict_batch(loaded.model, batch.x, len(genres))
    proba = np.asarray(proba, dtype=np.float64).reshape(batch.n_windows, len(genres))
    audible = np.ones(batch.n_windows, dtype=bool)
    if silence_floor_dbfs is not None and batch.levels_db is not None:
        audible = np.asarray(batch.levels_db) >= silence_floor_dbfs
        if not audible.any():
            raise SilentAudio(
                f"{name}: every analysed window is silent (below the {silence_floor_dbfs:g} "
                "dBFS floor of api.silence_floor_dbfs); send a recording with music in it")
    mean = proba[audible].mean(axis=0)
    used = int(audible.sum())
    return Prediction(
        genre=str(genres[int(mean.argmax())]),
        probabilities={g: float(p) for g, p in zip(genres, mean, strict=True)},
        window_probabilities=proba,
        duration_s=duration,
        analysed_s=min(duration, used * params.duration_s),
        n_windows=used,
        seconds=time.perf_counter() - start,
        mel_db=batch.mel_db,
        silent_windows=batch.n_windows - used,
    )


def predict_decoded(decoded: audio.DecodedAudio, loaded: LoadedModel,
                    name: str = "uploaded file", policy: InputPolicy | None = None) -> Prediction:
    """Predict the genre of audio decoded once by :func:`decode_upload` (level checked first);
    the ensemble reads the same decoded audio for each of its members."""
    start = time.perf_counter()
    level = check_level(decoded, policy, name)
    if "members" in loaded.extras:
        prediction = _predict_ensemble(decoded, loaded, name, policy)
    else:
        prediction = _predict_one(decoded, loaded, name, policy)
    prediction.truncated = decoded.truncated
    prediction.level_dbfs = level
    prediction.band_limit_hz = audio.band_limit_hz(decoded.y, decoded.sample_rate)
    prediction.seconds = time.perf_counter() - start
    return prediction


def _predict_one(decoded: audio.DecodedAudio, loaded: LoadedModel, name: str,
                 policy: InputPolicy | None) -> Prediction:
    y = decoded.resampled(sample_rate(loaded))
    prediction = predict_signal(y, loaded, name, policy.silence_floor_dbfs if policy else None,
                                policy.min_duration_s if policy else None)
    prediction.duration_s = max(prediction.duration_s, decoded.duration_s)
    return prediction


def _predict_ensemble(decoded: audio.DecodedAudio, loaded: LoadedModel, name: str,
                      policy: InputPolicy | None) -> Prediction:
    """Each member's prediction of the file (its own input, as served alone), averaged with the
    bundle's weights: the evaluation node's :func:`music_genre.evaluation.average_probabilities`
    on the members' test probabilities."""
    start = time.perf_counter()
    weights = loaded.extras["weights"]
    genres = loaded.genres
    parts = {m: _predict_one(decoded, member, name, policy)
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
        seconds=time.perf_counter() - start, mel_db=mel,
        silent_windows=max(p.silent_windows for p in parts.values()))


def predict_bytes(data: bytes, loaded: LoadedModel, name: str = "uploaded file",
                  policy: InputPolicy | None = None) -> Prediction:
    """Decode an uploaded file (within ``policy``'s bounds) and predict its genre, its input
    computed as the model's bundle says."""
    start = time.perf_counter()
    prediction = predict_decoded(decode_upload(data, policy, name), loaded, name, policy)
    prediction.seconds = time.perf_counter() - start
    return prediction


def first_window_mel(data: bytes | audio.DecodedAudio,
                     params: audio.ExtractionParams) -> np.ndarray:
    """dB mel spectrogram of a file's first window (for kinds that do not compute one); pass
    the request's :class:`music_genre.audio.DecodedAudio` to avoid decoding again."""
    if not isinstance(data, audio.DecodedAudio):
        data = audio.decode_bounded(data, params.duration_s)
    y = data.resampled(params.sample_rate)[: params.n_samples]
    return audio.analyse(next(audio.windows(y, params)), params, with_features=False).mel_db


def display_spectrogram(mel_db: np.ndarray, time_pool: int = 4) -> np.ndarray:
    """A small uint8 image (n_mels × frames/time_pool, low frequencies in row 0) of a dB mel
    spectrogram, min-max scaled like the CNN's input, for the web page."""
    norm = audio.normalise_spectrogram(mel_db)
    frames = norm.shape[1] - norm.shape[1] % time_pool
    pooled = norm[:, :frames].reshape(norm.shape[0], -1, time_pool).mean(axis=2)
    return np.round(pooled * 255).astype(np.uint8)


def choose_default_model(available: Sequence[str], selection: Mapping[str, Any] | None = None,
                         accuracies: Mapping[str, float | None] | None = None,
                         preferred: str | None = None) -> tuple[str | None, str]:
    """The model used when none is named, among the ``available`` ones, and what chose it:
    ``preferred`` (a setting) when given; else the first available model of the ranking
    (``selection``: the ``model_selection`` output, by grouped CV, then other artists, then the
    test split); else the best test-split accuracy (``accuracies``; a model without ranks last).

    The rule of the service's ``Service.default_choice``, as one function of plain data: the
    ``classify`` pipeline and CLI call it (the service can, too).
    """
    if preferred:
        return preferred, "setting"
    for row in (selection or {}).get("ranking", []):
        if row["model"] in available:
            figure = next((f for f in FIGURES if row.get(f)), "split")
            return row["model"], f"model_selection ({figure} figure)"
    accuracies = accuracies or {}
    ranked = sorted(available, key=lambda n: -(accuracies.get(n) or -1.0))
    return (ranked[0] if ranked else None), "test-split accuracy (no model_selection)"
