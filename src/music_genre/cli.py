"""Project CLI: Kedro's own ``kedro run``, with ``--pipeline NAME`` kept as this project's spelling.

Every command in the README and the design reads ``kedro run --pipeline cnn``. Kedro 1.7 renamed
the option to ``--pipelines`` (comma-separated) and warns on every use of the old one. This
``run`` is Kedro's ``run`` command, unchanged, except that ``--pipeline NAME`` is handed on as
``--pipelines NAME``: both spellings work, and neither prints a deprecation warning. Kedro loads
a project's ``cli.py`` commands over its built-in ones (docs: "add or modify CLI commands").
"""

from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as _kedro_run

PIPELINE_HELP = ("Name of the registered pipeline to run (this project's spelling; the same as "
                 "--pipelines NAME). If not set, the '__default__' pipeline is run.")


@click.group(name="music_genre")
def cli() -> None:
    """Project commands."""


def _run(pipeline: str | None = None, pipelines: list[str] | None = None, **kwargs):
    if pipeline and pipelines:
        raise click.UsageError("--pipeline and --pipelines cannot be used together")
    if pipeline:
        pipelines = [pipeline]
    return _kedro_run.callback(pipeline=None, pipelines=pipelines or [], **kwargs)


def _with_help(option: click.Parameter) -> click.Parameter:
    if option.name == "pipeline":
        option = copy.copy(option)
        option.help = PIPELINE_HELP
    return option


run = click.Command(name="run", callback=_run, help=_kedro_run.help,
                    params=[_with_help(p) for p in _kedro_run.params])
cli.add_command(run)
