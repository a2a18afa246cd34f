"""The prediction service: FastAPI app with ``/health``, ``/models``, ``/predict`` and a web page.

Run it with ``python -m music_genre.api [--env demo]`` or
``uvicorn music_genre.api.app:app --host 0.0.0.0 --port 8000`` (configure the latter with
``MUSIC_GENRE_API_*`` environment variables, e.g. ``MUSIC_GENRE_API_ENV=demo``).

Models are loaded once, when the app starts (lifespan). A prediction is CPU-bound (decoding, STFT,
features, model): it runs in a worker thread, at most ``api.max_concurrent`` at a time, so the
event loop keeps answering; up to ``api.max_queue`` more wait their turn, and beyond that a
request is answered 503 with ``Retry-After`` before its body is read. Uploads are checked
against ``api.max_upload_mb`` while they stream in, and decoded from memory, as a stream, only
their first ``api.max_analysed_s`` seconds: nothing is written to disk and the client never
names a path. With ``api.token`` (or ``MUSIC_GENRE_API_TOKEN``) set, ``/predict`` and
``/models`` need ``Authorization: Bearer <token>``; ``/health``, the page and ``/docs`` stay
open.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hmac
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path, PurePath
from typing import Any

import anyio
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from music_genre import __version__, inference
from music_genre.api.service import (
    ApiSettings,
    Service,
    beyond_loopback,
    load_service,
    warn_if_open,
)
from music_genre.audio import AudioError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SUPPORTED = "WAV, FLAC, OGG, MP3 or AU"


class ApiError(Exception):
    """An error answered as ``{"error": message, ...extra}`` with ``status``."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class UploadTooLarge(StarletteHTTPException):
    # an HTTPException, so that FastAPI's form parsing lets it through instead of turning it
    # into "400 error parsing the body"
    def __init__(self, limit: int):
        super().__init__(413, f"upload larger than the {limit / 2**20:g} MB limit "
                              "(api.max_upload_mb); send a shorter or compressed file")
        self.limit = limit

    def response(self) -> JSONResponse:
        # "Connection: close": the rest of the body is not read
        response = _error(413, self.detail, limit_bytes=self.limit)
        response.headers["connection"] = "close"
        return response


class UploadLimit:
    """ASGI middleware: refuse a body above the limit from its Content-Length, or, for a chunked
    upload, as soon as the bytes received pass it, without reading the rest.

    FastAPI 0.165's own ``max_body_size`` covers the same two cases but takes its limit when
    the app (or route) is built, as an int; this service's limit is configuration read when the
    app starts (``api.max_upload_mb`` in conf/, for ``uvicorn music_genre.api.app:app`` too),
    and its 413 is plain text ("Content Too Large") where this one is the service's JSON error
    saying which setting to change. Hence this middleware (tests cover both cases).
    """

    def __init__(self, app, paths: set[str], limit):
        self.app, self.paths, self.limit = app, paths, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        limit = self.limit()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(UploadTooLarge(limit), scope, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge as exc:  # raised while the form was being parsed
            if not started:
                await self._refuse(exc, scope, send)

    @staticmethod
    async def _refuse(exc: UploadTooLarge, scope, send):
        await exc.response()(scope, None, send)


def _plain_error(status: int, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> JSONResponse:
    response = _error(status, message, **extra)
    response.headers.update(headers or {})
    return response


class Gate:
    """ASGI middleware in front of the protected paths: the Bearer token (401 without it), then
    admission: at most ``max_concurrent + max_queue`` requests in the house, the next one gets
    503 with ``Retry-After`` before its body is read (so a burst cannot pile up uploads in
    memory)."""

    def __init__(self, app, settings, protected: set[str], admitted: set[str]):
        self.app, self.settings = app, settings
        self.protected, self.admitted = protected, admitted
        self.inside = 0
        self.mean_s = 5.0  # moving average of an admitted request's time, for Retry-After
        self.open_warned = False

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or (path not in self.protected and path not in self.admitted):
            return await self.app(scope, receive, send)
        settings = self.settings()
        if settings is None:  # not started yet
            return await self.app(scope, receive, send)
        if not settings.token and not self.open_warned:
            # `uvicorn ... --host 0.0.0.0` does not tell the app where it listens: the first
            # request that arrives on a non-loopback address does
            server = scope.get("server") or (None,)
            if beyond_loopback(server[0]):
                self.open_warned = True
                warn_if_open(dataclasses.replace(settings, host=server[0]))
        if path in self.protected and settings.token and not _authorised(scope, settings.token):
            response = _plain_error(
                401, "missing or wrong token: send 'Authorization: Bearer <token>' (the "
                     "service's api.token / MUSIC_GENRE_API_TOKEN)",
                {"www-authenticate": "Bearer", "connection": "close"})
            return await response(scope, receive, send)
        if path not in self.admitted:
            return await self.app(scope, receive, send)
        running = max(1, int(settings.max_concurrent or 1))
        capacity = running + max(0, int(settings.max_queue or 0))
        if self.inside >= capacity:
            wait = max(1, math.ceil(self.mean_s * (self.inside - running + 1) / running))
            response = _plain_error(
                503, f"busy: {self.inside} requests are being analysed or waiting (api."
                     f"max_concurrent {running} + api.max_queue {capacity - running}); "
                     f"try again in {wait} s", {"retry-after": str(wait), "connection": "close"},
                retry_after_s=wait)
            return await response(scope, receive, send)
        self.inside += 1
        start = anyio.current_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.inside -= 1
            self.mean_s = 0.8 * self.mean_s + 0.2 * (anyio.current_time() - start)


def _authorised(scope, token: str) -> bool:
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, value = given.partition(" ")
    # constant-time comparison of bytes (the token is never logged)
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8"), token.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Response schemas (shown in Swagger UI)
# ---------------------------------------------------------------------------------------------


class Spectrogram(BaseModel):
    n_mels: int
    n_columns: int
    seconds: float = Field(description="audio covered (the first window)")
    data: str = Field(description="base64 uint8 image, row-major, row 0 = lowest mel band")


class PredictResponse(BaseModel):
    genre: str
    probabilities: dict[str, float]
    model: str
    version: str | None
    duration_s: float = Field(description="length of the uploaded audio (the whole file)")
    analysed_s: float = Field(description="audio covered by the windows averaged")
    truncated: bool = Field(False, description="the file is longer than api.max_analysed_s: "
                                               "only its beginning was decoded and analysed")
    windows: int = Field(description="30 s windows whose probabilities were averaged")
    silent_windows: int = Field(0, description="windows below api.silence_floor_dbfs, left "
                                               "out of the average")
    level_dbfs: float | None = Field(None, description="RMS level of the analysed audio")
    band_limit_hz: float | None = Field(None, description="where the spectrum ends: ~4000 or "
                                        "~8000 for phone audio, 16000-20000 for an MP3 or CD")
    seconds: float = Field(description="server-side decode + analysis + inference time")
    synthetic: bool = Field(False, description="the model was trained on synthetic demo audio")
    warning: str | None = Field(None, description="e.g. that the model is a demo model")
    spectrogram: Spectrogram | None = None


class ErrorResponse(BaseModel):
    error: str


ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "no file, or an empty file",
    401: "api.token is set and the request has no or another 'Authorization: Bearer' token",
    413: "upload larger than api.max_upload_mb",
    415: "not audio, or not decodable",
    422: "audio too short or silent, or unknown model (the choices are listed)",
    503: "the chosen model has not been trained yet (the command that trains it is given), or "
         "the service is busy (Retry-After says when to try again)",
}.items()}


def _contract_summary(contract: dict[str, Any]) -> dict[str, Any]:
    """What ``/models`` shows of a bundle's contract: its family, format, extraction parameters
    and input (feature columns counted, not listed)."""
    spec = dict(contract.get("input") or {})
    if "columns" in spec:
        spec["columns"] = len(spec["columns"])
    if "musicnn" in spec:  # the recipe: networks and patching, not the prior's tag lists
        spec.pop("musicnn")
    return {"format": contract.get("format"), "family": contract.get("family"),
            "extraction": contract.get("extraction"), "input": spec}


def _safe_name(filename: str | None) -> str:
    # only ever used in messages: the upload is decoded from memory, never saved under its name
    name = PurePath((filename or "").replace("\\", "/")).name[:100]
    return name or "uploaded file"


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app; ``settings`` (e.g. from the command line) win over the environment and conf/."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = await anyio.to_thread.run_sync(load_service, settings)
        app.state.service = service
        app.state.limiter = anyio.CapacityLimiter(max(1, int(service.settings.max_concurrent)))
        yield

    # FastAPIOffline serves Swagger UI's and ReDoc's assets itself: /docs works with no internet
    app = FastAPIOffline(
        title="music_genre prediction service",
        version=__version__,
        description="Upload an audio file (WAV, FLAC, OGG, MP3, AU; any length, rate, channels),"
                    " choose a model, get its genre. Web page at `/`.",
        lifespan=lifespan,
    )
    app.add_middleware(
        UploadLimit, paths={"/predict"},
        limit=lambda: int(float(app.state.service.settings.max_upload_mb) * 2**20),
    )
    # outermost: who may call, and how many at once, before any body is read
    app.add_middleware(
        Gate, protected={"/predict", "/models"}, admitted={"/predict"},
        settings=lambda: getattr(getattr(app.state, "service", None), "settings", None),
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, **exc.extra)

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, exc: UploadTooLarge):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if any("file" in e.get("loc", ()) for e in exc.errors()):
            return _error(400, "no file uploaded: the multipart field 'file' must be a file")
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.exception("Unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {exc.__class__.__name__}; see the server log")

    def service_of(request: Request) -> Service:
        return request.app.state.service

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        service = service_of(request)
        name, chosen_by = service.default_choice
        return {"status": "ok", "version": __version__, "env": service.env,
                "models": sorted(service.available), "default_model": name,
                "default_chosen_by": chosen_by, "default_figures": service.figures(name)}

    @app.get("/models")
    async def models(request: Request) -> dict[str, Any]:
        """Every model the service knows, with its version and test metrics when trained."""
        service = service_of(request)
        rows = []
        for name, status in service.models.items():
            row: dict[str, Any] = {"name": name, "available": status.loaded is not None,
                                   "default": name == service.default_model,
                                   # grouped CV, other artists, test split (model_selection)
                                   "figures": service.figures(name)}
            if status.loaded is not None:
                m = status.loaded
                trained_on = service.training_data(name)
                row.update(version=m.version, metrics_version=m.metrics_version,
                           kind=m.metrics.get("kind"),
                           # the serving contract its bundle carries (not today's conf)
                           contract=_contract_summary(m.contract),
                           conf_differences=status.conf_differences,
                           metrics={k: v for k, v in m.metrics.items()
                                    if isinstance(v, (int, float)) and v is not None},
                           synthetic=bool(trained_on["synthetic"]), training_data=trained_on)
            else:
                row.update(reason=status.reason, train_command=status.train_command)
            rows.append(row)
        return {"models": rows, "default_model": service.default_model,
                "default_chosen_by": service.default_choice[1],
                "figure_meaning": service.selection.get("meaning", {}),
                "genres": service.genres,
                "limits": {"max_upload_mb": service.settings.max_upload_mb,
                           "max_analysed_s": service.settings.max_analysed_s,
                           "silence_floor_dbfs": service.settings.silence_floor_dbfs}}

    @app.post("/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(
        request: Request,
        # plain (not Optional) annotations with None defaults: Swagger UI then draws a file
        # picker and a drop-down; a missing file is answered with a clear 400 below
        file: UploadFile = File(None, description=f"audio file ({SUPPORTED})"),
        model: str = Form(
            None, description="model to use; default: the best by grouped cross-validation (GET /models)",
            json_schema_extra={"enum": inference.MODEL_NAMES}),
        spectrogram: bool = Query(False, description="also return the first window's "
                                                     "spectrogram as a small image"),
    ) -> PredictResponse:
        """Predict the genre of an uploaded audio file (multipart field ``file``)."""
        service = service_of(request)
        if not isinstance(file, StarletteUploadFile):
            raise ApiError(400, "no file uploaded: send the audio as multipart/form-data "
                                "field 'file'")
        name = _safe_name(file.filename)
        try:
            data = await file.read()
        finally:
            await file.close()
        if not data:
            raise ApiError(400, f"{name}: empty file (0 bytes)")
        if model is not None and model not in service.models:
            raise ApiError(422, f"unknown model '{model}'; choose one of "
                                f"{', '.join(service.models)}", choices=list(service.models))
        chosen = model or service.default_model
        if chosen is None:
            commands = [s.train_command for s in service.models.values()]
            raise ApiError(503, "no model has been trained yet; train one with "
                                f"`{commands[0]}` (or {', '.join(commands[1:])}) and restart "
                                "the service", train_commands=commands)
        status = service.models[chosen]
        if status.loaded is None:
            fix = ("" if status.train_command in (status.reason or "")  # refused bundles say it
                   else f"; train it with `{status.train_command}`")
            raise ApiError(503, f"{status.reason}{fix} and restart the service",
                           train_command=status.train_command)
        try:
            prediction, image = await anyio.to_thread.run_sync(
                functools.partial(service.predict, data, chosen, name, spectrogram),
                limiter=request.app.state.limiter)
        except AudioError as exc:
            raise ApiError(415, str(exc)) from None
        except inference.SilentAudio as exc:
            raise ApiError(422, str(exc),
                           silence_floor_dbfs=service.settings.silence_floor_dbfs) from None
        except inference.InputError as exc:
            raise ApiError(422, str(exc), min_duration_s=service.min_duration_s(chosen)) \
                from None
        spec = None
        if image is not None:
            spec = Spectrogram(n_mels=image.shape[0], n_columns=image.shape[1],
                               seconds=min(prediction.duration_s,
                                           status.loaded.extraction.duration_s),
                               data=base64.b64encode(image.tobytes()).decode("ascii"))
        loaded = status.loaded
        trained_on = service.training_data(chosen)

        def rounded(value, digits=1):
            return None if value is None or not math.isfinite(value) else round(value, digits)

        return PredictResponse(
            genre=prediction.genre, probabilities=prediction.probabilities, model=chosen,
            version=loaded.version, duration_s=round(prediction.duration_s, 3),
            analysed_s=round(prediction.analysed_s, 3), truncated=prediction.truncated,
            windows=prediction.n_windows, silent_windows=prediction.silent_windows,
            level_dbfs=rounded(prediction.level_dbfs), band_limit_hz=rounded(
                prediction.band_limit_hz, 0),
            seconds=round(prediction.seconds, 4), synthetic=bool(trained_on["synthetic"]),
            warning=trained_on.get("warning"), spectrogram=spec)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


#: ``uvicorn music_genre.api.app:app``: configured from MUSIC_GENRE_API_* and conf/ at start-up.
app = create_app()
