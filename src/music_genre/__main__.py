"""``python -m music_genre``: the project's ``kedro run``, plus ``python -m music_genre classify``.

``python -m music_genre classify PATH... [--model NAME] [--env ENV] [--json] [--playlists]``
runs the ``classify`` pipeline (the very code of ``kedro run --pipeline classify``) on files and
folders and prints one line per file (genre, probability, path), or the table as JSON.
Anything else is handed to Kedro's ``run`` command, as before.
"""

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any


def main(*args, **kwargs) -> Any:
    argv = list(args[0]) if args and isinstance(args[0], (list, tuple)) else sys.argv[1:]
    if argv[:1] == ["classify"]:
        return classify(argv[1:])

    from kedro.framework.cli.utils import find_run_command
    from kedro.framework.project import configure_project

    package_name = Path(__file__).parent.name
    configure_project(package_name)
    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive
    run = find_run_command(package_name)
    return run(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m music_genre classify",
        description="Predict the genre of audio files (folders are walked recursively) with a "
                    "trained model; results also go to data/07_model_output/classify/ (versioned)."
                    " Files classified before with the same model version are not analysed again.")
    parser.add_argument("paths", nargs="+", help="audio files or folders")
    parser.add_argument("--model", help="a model of the roster: rf, rf_robust, mlp, cnn, "
                                        "transfer, ensemble (default: the served default, the "
                                        "first of the model ranking)")
    parser.add_argument("--env", help="Kedro environment whose models are used (e.g. demo)")
    parser.add_argument("--project-path", type=Path, default=None,
                        help="the project folder (default: the current folder or a parent)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON records")
    parser.add_argument("--playlists", action="store_true",
                        help="also write one .m3u per genre (data/08_reporting/classify/playlists)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default params:classify.n_jobs, -1: all cores)")
    parser.add_argument("--verbose", action="store_true", help="show Kedro's log")
    return parser


def classify(argv: list[str]) -> int:
    options = _parser().parse_args(argv)
    from music_genre import logs

    logs.setup()  # what a `kedro` command gets from the project's kedro.init hook
    if not options.verbose:  # Kedro's run log only on request (warnings and errors always)
        logging.disable(logging.INFO)
    # stdout carries the answer only: whatever Kedro, its plugins or the libraries print or log
    # goes to stderr (with the progress bar)
    with contextlib.redirect_stdout(sys.stderr):
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project
        from kedro.runner import SequentialRunner

        from music_genre.api.service import find_project
        from music_genre.pipelines.classify.nodes import result_lines

        project = (options.project_path or find_project()).resolve()
        runtime: dict[str, Any] = {"input": [str(Path(p).expanduser().resolve())
                                             for p in options.paths]}
        if options.model:
            runtime["model"] = options.model
        if options.playlists:
            runtime["playlists"] = True
        if options.jobs is not None:
            runtime["n_jobs"] = options.jobs
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env=options.env,
                                 runtime_params={"classify": runtime}) as session:
            # the context for reading the table back is made first: made after the run, its
            # hooks would find the run's MLflow run still open and warn about it
            context = session.load_context()
            session.run(pipeline_names=["classify"], runner=SequentialRunner())
            version = session.session_id  # the save version of this run's versioned outputs
            results = context.catalog.load("classify.results", version=version)
    if options.json:
        print(json.dumps(json.loads(results.to_json(orient="records")), indent=1))
    else:
        for line in result_lines(results):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
