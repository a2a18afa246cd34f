"""The pretrained MusiCNN checkpoints: fetched from the package index, never vendored.

The weights come from the PyPI wheel ``musicnn==0.1.0`` (ISC licence, J. Pons & X. Serra). Its
metadata pins ``numpy<1.17``, so it cannot be installed next to this project; instead we
``pip download`` the wheel alone (pinned by version *and* sha256) into a cache folder and unzip
the TF1 checkpoint files we need. The wheel's Python code is never imported.

Cache folder, in order of precedence: the ``cache_dir`` argument (``params:transfer.cache_dir``),
``$MUSIC_GENRE_CACHE/musicnn``, ``<project>/.cache/musicnn`` (git-ignored). A second call finds
the extracted files and touches no network.

Offline machines: put ``musicnn-0.1.0-py3-none-any.whl`` (downloaded anywhere with
``pip download --no-deps musicnn==0.1.0``) into the cache folder; its hash is checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MUSICNN_VERSION = "0.1.0"
WHEEL_NAME = f"musicnn-{MUSICNN_VERSION}-py3-none-any.whl"
#: sha256 of the PyPI wheel, pinned: pip refuses any other file (``--require-hashes``).
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
#: Checkpoints we extract. The TF1 files are literally named ``.index``/``.data-00000-of-00001``
#: (empty prefix), so the checkpoint prefix is the folder path with a trailing separator.
MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
CHECKPOINT_FILES = (".index", ".data-00000-of-00001", ".meta", "config.json")
_LICENCE = "musicnn-0.1.0.dist-info/LICENSE.md"
_DONE = ".extracted"


class WeightsUnavailable(RuntimeError):
    """The musicnn wheel is neither cached nor downloadable; the message says what to do."""


def project_root() -> Path:
    here = Path(__file__).resolve()
    root = here.parents[3]  # src/music_genre/transfer/weights.py -> project root
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Where the wheel and the extracted checkpoints live (see the module docstring)."""
    if cache:
        return Path(cache).expanduser().resolve()
    env = os.environ.get("MUSIC_GENRE_CACHE")
    base = Path(env).expanduser() if env else project_root() / ".cache"
    return (base / "musicnn").resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(folder: Path) -> bool:
    return (folder / _DONE).is_file() and all(
        (folder / name).is_file() for name in CHECKPOINT_FILES
    )


def download_wheel(
    cache: str | os.PathLike | None = None,
    index_url: str | None = None,
    timeout_s: float = 60.0,
    retries: int = 2,
) -> Path:
    """The verified wheel in the cache: found there, or fetched with ``pip download``.

    ``index_url`` (or ``$MUSIC_GENRE_MUSICNN_INDEX``) replaces pip's configured indexes and
    find-links entirely; without it pip uses the machine's own configuration.
    """
    folder = cache_dir(cache)
    wheel = folder / WHEEL_NAME
    if wheel.is_file():
        if _sha256(wheel) == WHEEL_SHA256:
            return wheel
        raise WeightsUnavailable(
            f"{wheel} does not have the pinned sha256 {WHEEL_SHA256}; delete it and rerun"
        )
    folder.mkdir(parents=True, exist_ok=True)
    index_url = index_url or os.environ.get("MUSIC_GENRE_MUSICNN_INDEX")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        requirement = Path(tmp) / "requirements.txt"
        requirement.write_text(f"musicnn=={MUSICNN_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "-r", str(requirement), "-d", tmp,
            "--timeout", str(timeout_s), "--retries", str(retries), "--no-input",
            "--disable-pip-version-check",
        ]  # fmt: skip
        env = dict(os.environ)
        if index_url:
            cmd += ["--index-url", index_url]
            env.update(PIP_CONFIG_FILE=os.devnull, PIP_EXTRA_INDEX_URL="", PIP_FIND_LINKS="")
            env.pop("PIP_NO_INDEX", None)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        got = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not got.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
            raise WeightsUnavailable(
                f"Could not download the pretrained MusiCNN weights (wheel musicnn=={MUSICNN_VERSION})"
                f" from the package index{f' {index_url}' if index_url else ''}.\n"
                f"pip said: {tail}\n"
                "Fix: on a machine that reaches PyPI run\n"
                f"    pip download --no-deps musicnn=={MUSICNN_VERSION} -d {folder}\n"
                f"or copy {WHEEL_NAME} (sha256 {WHEEL_SHA256}) into {folder}, then rerun. "
                "(The folder can be moved with $MUSIC_GENRE_CACHE or params:transfer.cache_dir.)"
            )
        if _sha256(got) != WHEEL_SHA256:  # pip already checked; belt and braces
            raise WeightsUnavailable(f"downloaded {WHEEL_NAME} does not match sha256 {WHEEL_SHA256}")
        os.replace(got, wheel)
    return wheel


def checkpoint_prefix(
    model: str = "MSD_musicnn",
    cache: str | os.PathLike | None = None,
    index_url: str | None = None,
) -> str:
    """Checkpoint prefix (``.../MSD_musicnn/``) for ``tf.train`` readers; fetches on first use.

    Idempotent: once extracted, no pip call is made.
    """
    if model not in MODELS:
        raise ValueError(f"unknown musicnn model {model!r}; one of {MODELS}")
    root = cache_dir(cache)
    target = root / model
    if not _is_complete(target):
        wheel = download_wheel(root, index_url=index_url)
        with zipfile.ZipFile(wheel) as zf:
            for name in MODELS:
                staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
                staging.chmod(0o755)
                try:
                    for fname in CHECKPOINT_FILES:
                        with zf.open(f"musicnn/{name}/{fname}") as src:
                            (staging / fname).write_bytes(src.read())
                    with zf.open(_LICENCE) as src:
                        (staging / "LICENSE.md").write_bytes(src.read())
                    (staging / _DONE).write_text(WHEEL_SHA256 + "\n")
                    final = root / name
                    if _is_complete(final):
                        continue  # a concurrent process got there first
                    shutil.rmtree(final, ignore_errors=True)
                    try:
                        os.replace(staging, final)
                    except OSError:
                        if not _is_complete(final):
                            raise
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
    return str(target) + os.sep
