"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

import os

# Telemetry is off unless a user opts in explicitly.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

from kedro.config import OmegaConfigLoader  # noqa: E402

from music_genre.hooks import ProjectHooks  # noqa: E402

HOOKS = (ProjectHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
