"""``python -m music_genre.api [--env demo] [--host H] [--port P]``: serve the trained models."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from music_genre.api.service import ApiSettings, find_project, read_api_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m music_genre.api",
        description="Serve the latest trained models over HTTP (Swagger UI at /docs, a web page "
                    "at /). Unset options come from MUSIC_GENRE_API_* variables, then the api: "
                    "block of conf/<env>/parameters*.yml. The access token comes from api.token "
                    "(conf/local/) or MUSIC_GENRE_API_TOKEN, never from the command line.")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--env", help="Kedro environment whose catalog holds the models, "
                                      "e.g. demo")
    parser.add_argument("--project-path", help="the Kedro project (default: found from here)")
    parser.add_argument("--conf-source", help="another conf folder")
    parser.add_argument("--max-upload-mb", type=float, help="largest upload (default 50)")
    parser.add_argument("--min-duration-s", type=float, help="shortest audio accepted")
    parser.add_argument("--default-model", help="model used when a request names none "
                                                "(default: the best by test accuracy)")
    parser.add_argument("--max-analysed-s", type=float,
                        help="seconds decoded and analysed from the start of a file "
                             "(default 120)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_const", const=False,
                        help="skip the warm-up prediction at start-up")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    settings = ApiSettings(
        project_path=args.project_path, env=args.env, conf_source=args.conf_source,
        host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
        min_duration_s=args.min_duration_s, default_model=args.default_model,
        warmup=args.warmup, max_analysed_s=args.max_analysed_s,
    ).merged(ApiSettings.from_environ())
    project = Path(settings.project_path) if settings.project_path else find_project()
    settings.project_path = str(project)
    if settings.host is None or settings.port is None:
        settings = settings.merged(read_api_params(project, settings.env, settings.conf_source),
                                   {"host": "127.0.0.1", "port": 8000})

    import uvicorn

    from music_genre.api.app import create_app

    logging.getLogger("music_genre").setLevel(args.log_level.upper())
    uvicorn.run(create_app(settings), host=settings.host, port=int(settings.port),
                log_level=args.log_level)


if __name__ == "__main__":
    main()
