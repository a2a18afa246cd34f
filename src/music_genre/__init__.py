"""music_genre: music genre classification on GTZAN, built as a Kedro project."""

__version__ = "0.1.0"
