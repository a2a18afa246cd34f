"""Node of the ``download`` pipeline: a thin wrapper over :mod:`music_genre.download`."""

from __future__ import annotations

from typing import Any

from music_genre.download import fetch_gtzan_from_params


def download_gtzan(params: dict[str, Any]) -> dict[str, Any]:
    """Make sure GTZAN is under ``params['dest_dir']``; return the receipt.

    The receipt holds the path, layout, number of audio files, sha256 of the archive (None when
    nothing had to be downloaded), the URL used and the seconds it took.
    """
    return fetch_gtzan_from_params(params).receipt()
