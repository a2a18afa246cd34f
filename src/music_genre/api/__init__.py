"""REST prediction service (FastAPI): ``python -m music_genre.api`` or
``uvicorn music_genre.api.app:app``. See README, "Serving"."""
