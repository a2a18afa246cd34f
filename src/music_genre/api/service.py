"""The service's state: settings, and the models loaded once through the project's Kedro catalog.

Settings come, strongest first, from explicit arguments (the ``python -m music_genre.api``
options), ``MUSIC_GENRE_API_*`` environment variables (how ``uvicorn music_genre.api.app:app``
is configured), the ``api:`` block of ``conf/<env>/parameters*.yml``, and built-in defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from music_genre import classify_io, inference, roster, selection
from music_genre.models import bundle as bundles

logger = logging.getLogger(__name__)

ENV_PREFIX = "MUSIC_GENRE_API_"


@dataclass
class ApiSettings:
    project_path: str | None = None
    env: str | None = None  # Kedro environment, e.g. "demo"
    conf_source: str | None = None  # another conf folder (tests, deployments)
    host: str | None = None
    port: int | None = None
    max_upload_mb: float | None = None
    min_duration_s: float | None = None
    default_model: str | None = None  # None: the best by test accuracy
    max_concurrent: int | None = None  # predictions computed at once; others wait
    max_queue: int | None = None  # requests waiting for a slot; beyond: 503 + Retry-After
    models: list[str] | None = None
    warmup: bool | None = None
    max_analysed_s: float | None = None  # seconds decoded and analysed from a file's start
    max_decoded_samples: int | None = None  # hard cap, all channels counted
    silence_floor_dbfs: float | None = None  # quieter uploads: 422; quieter windows: skipped
    token: str | None = None  # Bearer token for /predict and /models (None: open)

    _types = {"port": int, "max_upload_mb": float, "min_duration_s": float,
              "max_concurrent": int, "max_queue": int,
              "warmup": lambda v: str(v).lower() in ("1", "true", "yes"),
              "models": lambda v: [m.strip() for m in str(v).split(",") if m.strip()],
              "max_analysed_s": float, "max_decoded_samples": int,
              "silence_floor_dbfs": float}

    DEFAULTS = {"host": "127.0.0.1", "port": 8000, "max_upload_mb": 50.0, "min_duration_s": None,
                "default_model": None, "max_concurrent": 2, "max_queue": 8,
                "models": None, "warmup": True, "max_analysed_s": 120.0,
                "max_decoded_samples": 120 * 48_000 * 2, "silence_floor_dbfs": -60.0,
                "token": None}

    def __repr__(self) -> str:  # never print the token
        shown = dataclasses.replace(self, token="***" if self.token else None)
        return "ApiSettings(" + ", ".join(f"{f.name}={getattr(shown, f.name)!r}"
                                          for f in dataclasses.fields(self)) + ")"

    @property
    def policy(self) -> inference.InputPolicy:
        return inference.InputPolicy.from_settings(self)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        # MUSIC_GENRE_API_TOKEN is read like every other key (a secret belongs in the
        # environment or conf/local/, never in conf/base)
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw not in (None, ""):
                values[f.name] = cls._types.get(f.name, str)(raw)
        return cls(**values)

    def merged(self, *weaker: ApiSettings | dict[str, Any]) -> ApiSettings:
        """These settings with every unset field taken from the first weaker source that sets it."""
        values = dataclasses.asdict(self)
        for source in weaker:
            other = dataclasses.asdict(source) if isinstance(source, ApiSettings) else source
            for key, value in (other or {}).items():
                if key not in values:
                    raise ValueError(f"api settings: unknown key '{key}'; valid keys are "
                                     f"{sorted(values)} (conf/base/parameters_api.yml)")
                if values[key] is None and value is not None:
                    values[key] = value
        return ApiSettings(**values)


def beyond_loopback(host: str | None) -> bool:
    """Whether binding ``host`` makes the service reachable from other machines."""
    if host in (None, "", "localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it resolves to a public interface
        return True


def warn_if_open(settings: ApiSettings) -> None:
    if beyond_loopback(settings.host) and not settings.token:
        logger.warning(
            "Listening on %s without a token: anyone who reaches this machine can use the "
            "service. Set api.token in conf/local/ or MUSIC_GENRE_API_TOKEN (clients then send "
            "'Authorization: Bearer <token>').", settings.host)


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (``MALLOC_ARENA_MAX``): each request thread otherwise gets its
    own arena, and freed request buffers stay mapped in them."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt") and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(-8, int(arenas))  # M_ARENA_MAX


def release_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise: RSS after a large
    request stayed at its peak)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def find_project(start: Path | None = None) -> Path:
    """The Kedro project: the working directory or one of its parents, else this package's."""
    for candidate in [start or Path.cwd(), *(start or Path.cwd()).parents,
                      Path(__file__).resolve().parents[3]]:
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and "[tool.kedro]" in pyproject.read_text():
            return candidate
    raise RuntimeError("no Kedro project found: run from the project folder or pass "
                       "--project-path (MUSIC_GENRE_API_PROJECT_PATH)")


@dataclass
class ModelStatus:
    """What the service knows about one model name, loaded or not."""

    name: str
    loaded: inference.LoadedModel | None = None
    reason: str | None = None  # why it is not available
    train_command: str = ""
    #: where today's conf differs from the bundle the model is served with (bundle wins)
    conf_differences: list[str] = field(default_factory=list)


@dataclass
class Service:
    """The loaded models. Each model's input is computed as its bundle's contract says
    (extraction parameters, columns, chain, networks, genres); today's ``params:extraction`` is
    kept only to report where it differs (``conf_extraction``)."""

    settings: ApiSettings
    env: str
    conf_extraction: dict[str, Any]
    genres: list[str]
    models: dict[str, ModelStatus] = field(default_factory=dict)
    #: the latest ``model_selection`` output (ranking by grouped CV, other artists, test split)
    selection: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> dict[str, inference.LoadedModel]:
        return {n: s.loaded for n, s in self.models.items() if s.loaded is not None}

    @property
    def default_model(self) -> str | None:
        return self.default_choice[0]

    @property
    def default_choice(self) -> tuple[str | None, str]:
        """The default model and what chose it (:func:`music_genre.inference.choose_default_model`:
        ``api.default_model``, else the first loaded model of the ranking ``model_selection`` —
        grouped CV, then other artists, then test split — else the best test-split accuracy)."""
        name, chosen_by = inference.choose_default_model(
            list(self.available), self.selection,
            {n: m.accuracy for n, m in self.available.items()}, self.settings.default_model)
        return name, "api.default_model" if chosen_by == "setting" else chosen_by

    def figures(self, name: str) -> dict[str, Any]:
        """The ranking's figures of one model (grouped CV, other artists, test split)."""
        for row in self.selection.get("ranking", []):
            if row["model"] == name:
                return {f: row.get(f) for f in selection.FIGURES}
        return {}

    #: the env declares synthetic training audio (params:training_data), for models trained
    #: before their metrics recorded it (see training_data)
    synthetic_env: bool = False

    def predict(self, data: bytes, name: str, filename: str, spectrogram: bool = False):
        """Decode the upload once, within the input policy, and predict with ``name``; the
        spectrogram image comes from the same decoded audio."""
        loaded = self.models[name].loaded
        policy = self.settings.policy
        try:
            start = time.perf_counter()
            decoded = inference.decode_upload(data, policy, filename)
            prediction = inference.predict_decoded(decoded, loaded, filename, policy)
            image = None
            if spectrogram:
                mel = prediction.mel_db
                if mel is None:
                    mel = inference.first_window_mel(decoded, loaded.extraction)
                image = inference.display_spectrogram(mel)
            prediction.mel_db = None
            prediction.seconds = time.perf_counter() - start
            del decoded
            return prediction, image
        finally:
            release_memory()

    def min_duration_s(self, name: str) -> float:
        """The shortest upload model ``name`` accepts (``api.min_duration_s``, else its
        bundle's)."""
        return inference.model_extraction(self.models[name].loaded,
                                          self.settings.min_duration_s).min_duration_s

    def training_data(self, name: str) -> dict[str, Any]:
        """What ``name`` was trained on (recorded by the training run; older models: the env's
        ``training_data`` parameters), with ``synthetic`` and a ``warning`` for demo models."""
        loaded = self.models[name].loaded
        info = dict((loaded.metrics.get("training_data") if loaded else None) or {})
        info.setdefault("synthetic", self.synthetic_env)
        if info["synthetic"]:
            info["warning"] = SYNTHETIC_WARNING
        return info


SYNTHETIC_WARNING = "trained on synthetic demo audio: not for real music"


def _warm_up(service: Service) -> None:
    """One prediction per model on a synthetic clip, so the first request does not pay for
    numba's and Keras' one-off compilation."""
    rng = np.random.default_rng(0)
    for name, loaded in service.available.items():
        if "members" in loaded.extras:  # the ensemble: its members are warmed up
            continue
        rate = inference.sample_rate(loaded)
        y = 0.1 * rng.standard_normal(int(rate * max(service.min_duration_s(name), 3.0)))
        inference.predict_signal(y.astype(np.float32), loaded,
                                 min_duration_s=service.settings.min_duration_s)
    release_memory()


def _conf_differences(loaded: inference.LoadedModel, service: Service) -> list[str]:
    """Where today's ``params:extraction`` / ``params:genres`` differ from the model's bundle."""
    if "members" in loaded.extras:  # the ensemble: its members report their own
        return []
    out = bundles.conf_differences(loaded.contract, service.conf_extraction)
    if loaded.genres != service.genres:
        out.append(f"genres: {loaded.genres} in the bundle, {service.genres} in conf")
    return out


def _describe_run(loaded: inference.LoadedModel) -> str:
    info = loaded.metrics.get("training_data") or {}
    if not info:
        return "a run that did not record its settings (trained before they were recorded)"
    changed = info.get("runtime_params") or {}
    return (f"run {info.get('session_id', '?')} of {info.get('trained_at', '?')} "
            f"(env {info.get('env', '?')}, data: {info.get('description', '?')}, parameters "
            f"changed from conf/: {changed or 'none'})")


def load_service(settings: ApiSettings | None = None) -> Service:
    """Resolve the settings and load every model's latest version through the Kedro catalog."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from music_genre.tracking import import_tensorflow_first

    # before any Keras model is loaded: MLflow's autolog import hook needs TensorFlow whole
    import_tensorflow_first()
    settings = (settings or ApiSettings()).merged(ApiSettings.from_environ())
    inference.pin_blas_threads()
    limit_malloc_arenas()
    project = Path(settings.project_path) if settings.project_path else find_project()
    bootstrap_project(project)

    def open_context(env):
        session = KedroSession.create(project_path=project, env=env,
                                      conf_source=settings.conf_source)
        return session, session.load_context()

    session, context = open_context(settings.env)
    api_params = dict(context.params.get("api") or {})
    if settings.env is None and api_params.get("env"):
        session.close()
        session, context = open_context(api_params["env"])
        api_params = dict(context.params.get("api") or {})
    settings = settings.merged(api_params, ApiSettings.DEFAULTS, {"models": roster.names()})
    env = context.env or "local"
    try:
        params = context.params
        service = Service(settings, env, dict(params.get("extraction") or {}),
                          list(params["genres"]),
                          synthetic_env=bool((params.get("training_data") or {})
                                             .get("synthetic")))
        unknown = sorted(set(settings.models) - set(roster.names()))
        if unknown:
            raise ValueError(f"api.models: unknown model(s) {unknown}; known: "
                             f"{roster.names()}")
        catalog = context.catalog
        # members first: the ensemble is served over them
        for name in sorted(settings.models, key=lambda n: roster.spec(n).family == "ensemble"):
            status = ModelStatus(name, train_command=bundles.retrain_command(name, env))
            try:
                # the ensemble is served over the members loaded before it
                status.loaded = classify_io.load_model(catalog, params, name,
                                                       members=service.available, env=env)
                logger.info("Serving '%s' version %s (test accuracy %s), trained by %s", name,
                            status.loaded.version, status.loaded.accuracy,
                            _describe_run(status.loaded))
                status.conf_differences = _conf_differences(status.loaded, service)
                if status.conf_differences:
                    logger.warning(
                        "'%s' is served as its bundle says, not as conf/ says now (%s); retrain "
                        "it to use today's values: `%s`", name,
                        "; ".join(status.conf_differences), status.train_command)
            except bundles.IncompatibleBundle as exc:
                status.reason = str(exc)
                logger.warning("Not serving %s", status.reason)
            except LookupError as exc:
                status.reason = f"model '{name}' has not been trained yet: {exc}"
                logger.warning("%s; train it with `%s`", status.reason, status.train_command)
            except Exception as exc:  # a corrupt or incompatible file must not stop the others
                status.reason = (f"model '{name}' could not be loaded ({type(exc).__name__}: "
                                 f"{exc})")
                logger.exception("Loading '%s' failed", name)
            service.models[name] = status
        try:
            service.selection = catalog.load("model_selection")
        except Exception as exc:  # not written yet: rank by test accuracy, and say so
            logger.info("No model_selection yet (%s): the default model is the best by test "
                        "accuracy until `kedro run` ranks the models", type(exc).__name__)
        name, chosen_by = service.default_choice
        logger.info("Default model: %s (chosen by %s)", name, chosen_by)
    finally:
        session.close()
    if settings.default_model and settings.default_model not in service.available:
        raise ValueError(f"api.default_model '{settings.default_model}' is not available; "
                         f"loaded models: {sorted(service.available)}")
    demo = [n for n in service.available if service.training_data(n)["synthetic"]]
    if demo:
        logger.warning("Models %s were %s; every answer says so", demo, SYNTHETIC_WARNING)
    warn_if_open(settings)
    if settings.warmup:
        _warm_up(service)
    return service


def read_api_params(project: Path, env: str | None, conf_source: str | None) -> dict[str, Any]:
    """The ``api:`` parameter block, read without building a catalog (for host and port)."""
    from kedro.framework.project import settings as kedro_settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    loader = kedro_settings.CONFIG_LOADER_CLASS(
        conf_source=conf_source or str(project / kedro_settings.CONF_SOURCE), env=env,
        **kedro_settings.CONFIG_LOADER_ARGS)
    return dict(loader["parameters"].get("api") or {})
