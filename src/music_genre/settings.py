"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

import os
import warnings

# Telemetry is off unless a user opts in explicitly.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from music_genre import logs  # noqa: E402

logs.setup()  # whole log lines when redirected; known third-party warnings (also a kedro.init hook)

# Deprecation notices from third-party packages that a user can do nothing about.
warnings.filterwarnings("ignore", message=".*register_new_resolver.*")
warnings.filterwarnings("ignore", message=".*dataset names contain '.' characters.*")

from kedro.config import OmegaConfigLoader  # noqa: E402

from music_genre.hooks import ProjectHooks  # noqa: E402
from music_genre.mlflow_hook import PLUGIN, TrackedRunsMlflowHook  # noqa: E402
from music_genre.tracking import ClearMLHook, MlflowHook  # noqa: E402

# kedro-mlflow's hook, registered here in place of the plugin's own instance: the same hook,
# but it connects to the tracking store only for a run it tracks (music_genre.mlflow_hook).
# MlflowHook logs metrics and files into its run. Last here = called first, as the plugin's
# own hook was (pluggy calls the latest registered first; plugins register after HOOKS).
DISABLE_HOOKS_FOR_PLUGINS = (PLUGIN,)
HOOKS = (ProjectHooks(), MlflowHook(), ClearMLHook(), TrackedRunsMlflowHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
