"""Logging set-up used by ``conf/logging.yml``: readable in a terminal and in a redirected file.

* :func:`console_handler`: Kedro's Rich handler in a terminal; one plain, whole line per record
  when the output is redirected (Rich cannot see a terminal there and wraps every message at 80
  columns, mid-sentence).
* :class:`KnownThirdPartyWarnings`: drops the one start-up warning the project cannot fix at its
  cause, because it is raised inside a dependency before any project code runs (listed below,
  with where it comes from); every other warning is logged as usual.
"""

from __future__ import annotations

import logging
import sys

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: (message start, why it is dropped) of warnings raised in dependencies
KNOWN_WARNINGS = {
    # mlflow >= 2.20 warns when a PythonModel subclass has an un-annotated predict(); kedro-mlflow
    # 2.0.x defines one (KedroPipelineModel) and Kedro imports it with the plugin's CLI, before
    # the project's settings exist. This project never logs a KedroPipelineModel.
    "Add type hints to the `predict` method": "kedro_mlflow.mlflow.KedroPipelineModel",
}


def console_handler(stream: str = "stdout", **rich_kwargs) -> logging.Handler:
    """Rich in a terminal, whole plain lines otherwise (``conf/logging.yml``: ``console``)."""
    out = sys.stdout if stream == "stdout" else sys.stderr
    if out.isatty():
        from kedro.logging import RichHandler

        return RichHandler(**rich_kwargs)
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler


class KnownThirdPartyWarnings(logging.Filter):
    """Filter for the ``py.warnings`` logger: drops :data:`KNOWN_WARNINGS` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(known in message for known in KNOWN_WARNINGS)
