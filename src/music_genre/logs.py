"""Logs a person reads: whole lines when the output is redirected, and no start-up noise from a
dependency that the project cannot fix at its source.

:func:`setup` runs as early as the project can run code: as a Kedro ``kedro.init`` plugin hook
(``pyproject.toml``; every ``kedro`` command calls it before loading plugins) and again from
``settings.py`` (``python -m music_genre``, the API, and a checkout installed before the entry
point existed). It is idempotent.

* Rich, Kedro's console handler, wraps every message at 80 columns when it cannot see a terminal
  (``kedro run > run.log``, CI): there the handler is replaced by a plain one that writes each
  record as one whole line. In a terminal nothing changes. ``conf/logging.yml`` cannot do this
  itself: Kedro 1.7 accepts only ``logging``/``kedro.logging`` classes in it.
* :data:`KNOWN_WARNINGS` lists the warnings raised inside dependencies at import time; each is
  ignored by message, with the reason beside it.
"""

from __future__ import annotations

import logging
import warnings

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: message start → where it comes from and why ignoring it is safe
KNOWN_WARNINGS = {
    # mlflow >= 2.20 warns when a PythonModel subclass has an un-annotated predict(); kedro-mlflow
    # 2.0.x defines one (KedroPipelineModel) and Kedro imports it with the plugin's CLI, before any
    # project code but this hook runs. This project never logs a KedroPipelineModel.
    "Add type hints to the `predict` method": "kedro_mlflow.mlflow.KedroPipelineModel",
}


class _PlainHandler(logging.StreamHandler):
    """One whole line per record (the stand-in for Rich outside a terminal)."""


class _KnownWarnings(logging.Filter):
    """On the ``py.warnings`` logger (Kedro routes warnings to logging): drops the known ones.
    Needed beside the warnings filter: a dependency's ``simplefilter("once", UserWarning)``,
    placed in front of it, decides before it does."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(known in message for known in KNOWN_WARNINGS)


def setup() -> None:
    for message in KNOWN_WARNINGS:
        # MLflow wraps the text in ANSI colour codes: match anywhere in the message
        warnings.filterwarnings("ignore", message=".*" + message, category=UserWarning)
    py_warnings = logging.getLogger("py.warnings")
    if not any(isinstance(f, _KnownWarnings) for f in py_warnings.filters):
        py_warnings.addFilter(_KnownWarnings())
    whole_lines_when_redirected()


def whole_lines_when_redirected(root: logging.Logger | None = None) -> None:
    """Replace Rich console handlers on the root logger by plain ones when their stream is not a
    terminal."""
    try:
        from rich.logging import RichHandler
    except ImportError:
        return
    root = root or logging.getLogger()
    for handler in list(root.handlers):
        if not isinstance(handler, RichHandler):
            continue
        stream = handler.console.file
        if getattr(stream, "isatty", lambda: False)():
            continue
        plain = _PlainHandler(stream)
        plain.setLevel(handler.level)
        plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
        for f in handler.filters:
            plain.addFilter(f)
        root.removeHandler(handler)
        root.addHandler(plain)
