"""Fetch the GTZAN genre collection from a public mirror and lay it out under ``data/01_raw/gtzan``.

What it does, in order:

1. If ``dest_dir`` already holds audio in one of the two layouts the project reads, it stops
   there (no network at all)::

       <dest_dir>/genres_original/<genre>/<genre>.NNNNN.wav   (Kaggle zip)
       <dest_dir>/genres/<genre>/<genre>.NNNNN.au|.wav        (original genres.tar.gz)

2. If ``archive_path`` already exists (an earlier run with ``keep_archive``, or a file the user
   downloaded by hand) and matches the checksum, it is extracted without a network.
3. Otherwise the mirrors are tried in order. Each streams to ``<archive>.part`` with a tqdm bar;
   a dropped connection resumes with an HTTP ``Range`` request (or restarts from zero when the
   server ignores ``Range``). The finished file's sha256 is checked: a mismatch deletes it and
   downloads once more from scratch; a second mismatch moves on to the next mirror.
4. The archive (tar.gz or zip) is extracted into a staging folder, member by member, refusing
   absolute paths and ``..`` (nothing can land outside ``dest_dir``; links and device files are
   skipped), and the ``genres``/``genres_original`` folder is then moved into ``dest_dir``.

A host that cannot be reached (DNS failure, refused connection, no answer within ``timeout``
seconds) is not retried: with every mirror unreachable the step fails at once with
:class:`MirrorsUnreachableError`, whose message names each URL and says where to put the files by
hand and how to point the project at another root (``kedro run --params "raw_root=..."``).

Pinned facts (checked 2026-11 through public sources; the mirrors themselves were not reachable
from the build machine):

* ``GTZAN_SHA256`` = ``24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6`` is the
  sha256 that torchaudio pins for ``http://opihi.cs.uvic.ca/sound/genres.tar.gz``
  (``_CHECKSUMS`` in pytorch/audio ``src/torchaudio/datasets/gtzan.py``; older copies of that file
  pinned the md5 ``5b3d6dddb579ab49814ab86dba69e7c7``). The archive is ~1.2 GB.
* Mirrors, tried in order: the Hugging Face dataset ``marsyas/gtzan`` (``data/genres.tar.gz``,
  assumed to be the same bytes as the original; if it is not, the checksum error says so and how
  to override), the Wayback Machine copy of the original URL (snapshot 2022-03-28, the one
  recorded in a torchaudio fork), and the original opihi.cs.uvic.ca URL (offline since 2022,
  pytorch/audio#2743).

Also a command line: ``python -m music_genre.download [--url URL ...] [--sha256 HEX|none]
[--dest DIR]``, defaults from ``conf/base/parameters_download.yml`` (key ``download``). Nothing
here imports Kedro; the ``download`` pipeline wraps :func:`fetch_gtzan_from_params`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)

GTZAN_SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"
DEFAULT_URLS: tuple[str, ...] = (
    "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
    "https://web.archive.org/web/20220328223413id_/http://opihi.cs.uvic.ca/sound/genres.tar.gz",
    "http://opihi.cs.uvic.ca/sound/genres.tar.gz",
)
DEFAULT_DEST = "data/01_raw/gtzan"
DEFAULT_ARCHIVE = "data/01_raw/genres.tar.gz"
GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip
#: layout folder -> audio suffixes it may hold (the original archive has .au, Kaggle has .wav)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "genres_original": (".wav",),
    "genres": (".au", ".wav"),
}
PARAMS_FILE = Path("conf") / "base" / "parameters_download.yml"
_CHUNK = 1 << 20
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """The GTZAN step could not produce the data; the message says what to do by hand."""


class MirrorsUnreachableError(DownloadError):
    """No mirror could be contacted at all (offline, DNS failure, refused, connect timeout)."""


class ChecksumMismatchError(DownloadError):
    """A downloaded archive's sha256 differs from the pinned one (the bad file is deleted)."""


class UnsafeArchiveError(DownloadError):
    """An archive member would be written outside the destination folder."""


class _Unreachable(Exception):
    """Internal: the first contact with a mirror failed below HTTP."""


@dataclass(frozen=True)
class Mirror:
    url: str
    sha256: str | None


@dataclass(frozen=True)
class DownloadResult:
    """Where GTZAN ended up, and how it got there."""

    root: Path
    layout: str
    n_files: int
    sha256: str | None
    url: str | None
    seconds: float
    skipped: bool
    archive: Path | None

    def receipt(self) -> dict[str, Any]:
        """JSON-friendly summary (the ``download_receipt`` dataset)."""
        return {
            "path": str(self.root),
            "layout": self.layout,
            "n_files": self.n_files,
            "sha256": self.sha256,
            "url": self.url,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
            "archive": str(self.archive) if self.archive else None,
        }


# --------------------------------------------------------------------------------------------
# Layout


def find_audio(root: str | os.PathLike[str]) -> tuple[str | None, int]:
    """Return ``(layout, n_audio_files)`` for the first layout under ``root`` that has audio."""
    root = Path(root)
    for layout, suffixes in LAYOUTS.items():
        folder = root / layout
        if folder.is_dir():
            n = sum(1 for p in folder.glob("*/*") if p.is_file() and p.suffix.lower() in suffixes)
            if n:
                return layout, n
    return None, 0


def manual_instructions(
    dest_dir: str | os.PathLike[str], archive_path: str | os.PathLike[str]
) -> str:
    """The 'do it by hand' paragraph every failure message ends with."""
    dest = Path(dest_dir)
    return (
        "To install GTZAN by hand, get it from any copy you can reach (the Kaggle zip "
        "'GTZAN Dataset - Music Genre Classification', or genres.tar.gz) and arrange it so that "
        "one of these exists:\n"
        f"    {dest / 'genres_original'}/<genre>/<genre>.NNNNN.wav   (Kaggle layout)\n"
        f"    {dest / 'genres'}/<genre>/<genre>.NNNNN.au             (original layout)\n"
        f"  with <genre> one of: {', '.join(GENRES)}.\n"
        f"  Or copy the downloaded archive to {Path(archive_path)} and run this step again: it is "
        "checked and extracted without a network.\n"
        "  To use a copy that lives elsewhere, point the project at it: "
        'kedro run --params "raw_root=/path/to/gtzan"'
    )


# --------------------------------------------------------------------------------------------
# HTTP with a short connect timeout and a longer read timeout


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, read_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()  # uses self.timeout: the connect timeout
        if self._read_timeout is not None:
            self.sock.settimeout(self._read_timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, read_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()  # TCP connect + TLS handshake under the connect timeout
        if self._read_timeout is not None:
            self.sock.settimeout(self._read_timeout)


def _opener(read_timeout: float) -> urllib.request.OpenerDirector:
    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(_connection_factory(_HTTPConnection, read_timeout), req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(
                _connection_factory(_HTTPSConnection, read_timeout), req, context=self._context
            )

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _connection_factory(cls: type, read_timeout: float):  # type: ignore[no-untyped-def]
    def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
        return cls(*args, read_timeout=read_timeout, **kwargs)

    return make


def _describe(reason: object, timeout: float) -> str:
    if isinstance(reason, socket.gaierror):
        return f"host name could not be resolved ({reason.strerror or reason}); offline?"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason}"
    return str(reason)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` into ``(START, TOTAL)`` (None where absent)."""
    if not value or not value.startswith("bytes "):
        return None, None
    try:
        span, _, total = value[6:].partition("/")
        start = int(span.split("-", 1)[0])
        return start, (int(total) if total.strip() not in ("", "*") else None)
    except ValueError:
        return None, None


def _fetch(
    url: str,
    part: Path,
    *,
    resume: bool,
    timeout: float,
    read_timeout: float,
    retries: int,
    progress: bool,
) -> None:
    """Stream ``url`` into ``part``, resuming after drops; raise on a hopeless failure."""
    from tqdm.auto import tqdm  # a dependency of the project; imported late to keep import cheap

    opener = _opener(read_timeout)
    if not resume and part.exists():
        part.unlink()
    if part.exists() and part.stat().st_size:
        logger.info("Resuming %s from byte %d", part, part.stat().st_size)
    connected = False
    failures = 0  # consecutive attempts that added no byte
    bar = None
    try:
        while True:
            have = part.stat().st_size if part.exists() else 0
            req = urllib.request.Request(
                url, headers={"User-Agent": "music_genre-download/1", "Accept-Encoding": "identity"}
            )
            if have:
                req.add_header("Range", f"bytes={have}-")
            try:
                resp = opener.open(req, timeout=timeout)
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 416 and have:
                    logger.info("Server says %s is already complete; checking it", part)
                    return
                if exc.code in _RETRYABLE_HTTP and failures < retries:
                    failures += 1
                    time.sleep(min(0.5 * 2 ** (failures - 1), 10.0))
                    continue
                raise DownloadError(f"HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                if not connected:
                    raise _Unreachable(_describe(reason, timeout)) from None
                if failures >= retries:
                    raise DownloadError(
                        f"connection lost and not regained after {retries} retries: "
                        f"{_describe(reason, timeout)}"
                    ) from None
                failures += 1
                time.sleep(min(0.5 * 2 ** (failures - 1), 10.0))
                continue
            connected = True
            with resp:
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                start, total = _content_range(resp.headers.get("Content-Range"))
                if have and resp.status == 206 and start == have:
                    mode = "ab"
                    if total is None and length is not None:
                        total = have + length
                else:
                    if have:
                        logger.info(
                            "Server ignored the Range request (HTTP %s); restarting from zero",
                            resp.status,
                        )
                    have, mode, total = 0, "wb", length
                if bar is None:
                    bar = tqdm(
                        total=total, initial=have, unit="B", unit_scale=True,
                        unit_divisor=1024, desc=part.name.removesuffix(".part"),
                        disable=None if progress else True,
                    )  # fmt: skip
                else:
                    bar.reset(total=total)
                    bar.update(have)
                error: BaseException | None = None
                done = have
                logged = (have * 10 // total) if total else 0
                with part.open(mode) as fh:
                    try:
                        while chunk := resp.read1(_CHUNK):  # what has arrived, no more
                            fh.write(chunk)
                            bar.update(len(chunk))
                            done += len(chunk)
                            if bar.disable and total and done * 10 // total > logged:
                                logged = done * 10 // total  # no bar on a non-terminal: log
                                logger.info("%s: %d%% of %d bytes", part.name, logged * 10, total)
                    except (OSError, http.client.HTTPException) as exc:
                        error = exc
            size = part.stat().st_size
            if error is None and (total is None or size >= total):
                return
            why = _describe(error, read_timeout) if error else f"got {size} of {total} bytes"
            if size > have:
                failures = 0  # progress was made: resume straight away
            elif failures >= retries:
                raise DownloadError(f"download keeps failing ({why}) after {retries} retries")
            else:
                failures += 1
                time.sleep(min(0.5 * 2 ** (failures - 1), 10.0))
            logger.warning("Download of %s interrupted (%s); resuming", url, why)
    finally:
        if bar is not None:
            bar.close()


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _download_verified(
    mirror: Mirror, archive: Path, *, timeout: float, read_timeout: float, retries: int,
    progress: bool,
) -> str:  # fmt: skip
    """Download one mirror into ``archive`` and check it; a bad file is retried once from zero."""
    part = archive.with_name(archive.name + ".part")
    digest = ""
    for attempt in (1, 2):
        logger.info("Downloading %s -> %s", mirror.url, part)
        _fetch(
            mirror.url, part, resume=attempt == 1, timeout=timeout, read_timeout=read_timeout,
            retries=retries, progress=progress,
        )  # fmt: skip
        digest = sha256_file(part)
        if mirror.sha256 is None:
            logger.warning("No sha256 pinned for %s; got %s (not verified)", mirror.url, digest)
            os.replace(part, archive)
            return digest
        if digest == mirror.sha256:
            logger.info("sha256 OK (%s)", digest)
            os.replace(part, archive)
            return digest
        part.unlink()
        logger.warning(
            "Checksum mismatch for %s: expected sha256 %s, got %s; deleted the bad file%s",
            mirror.url, mirror.sha256, digest,
            ", downloading once more from scratch" if attempt == 1 else "",
        )  # fmt: skip
    raise ChecksumMismatchError(
        f"checksum mismatch: expected sha256 {mirror.sha256}, got {digest} on two clean "
        "downloads; the bad file was deleted. If this mirror legitimately serves a different "
        f"build of the archive, pass its digest (--sha256 {digest}, or download.sha256 in "
        "conf) or --sha256 none to skip the check"
    )


# --------------------------------------------------------------------------------------------
# Extraction


def _safe_name(name: str, dest: Path, archive: Path) -> PurePosixPath:
    norm = name.replace("\\", "/")
    rel = PurePosixPath(norm)
    bad = (
        norm.startswith("/")
        or (len(norm) > 1 and norm[1] == ":")  # C:foo
        or ".." in rel.parts
        or not (dest / rel).resolve().is_relative_to(dest.resolve())
    )
    if bad:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside {dest}; refusing to extract "
            "this archive (nothing was extracted)"
        )
    return rel


def _extract_into(archive: Path, staging: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:  # check every name before writing anything
                _safe_name(info.filename, staging, archive)
            for info in infos:
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    logger.warning("Skipping symlink %s in %s", info.filename, archive)
                    continue
                zf.extract(info, staging)
        return
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive ({exc})") from None
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tf:
        # One streaming pass; a bad member aborts and the caller deletes the staging folder.
        for member in tf:
            _safe_name(member.name, staging, archive)
            if not (member.isfile() or member.isdir()):
                logger.warning("Skipping %s (not a plain file) in %s", member.name, archive)
                continue
            try:
                tf.extract(member, staging, **extra)
            except tarfile.FilterError as exc:  # the stdlib's own "data" filter said no
                raise UnsafeArchiveError(f"{archive}: {exc}; refusing to extract") from None


def _find_layout(staging: Path) -> Path | None:
    """The shallowest ``genres``/``genres_original`` folder under ``staging`` that has audio."""
    queue = [staging]
    for _depth in range(4):
        nxt: list[Path] = []
        for folder in queue:
            layout, _ = find_audio(folder)
            if layout:
                return folder / layout
            nxt.extend(p for p in sorted(folder.iterdir()) if p.is_dir())
        queue = nxt
    return None


def extract_archive(
    archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str]
) -> tuple[str, int]:
    """Safely extract a GTZAN tar/zip so that ``dest_dir/<layout>/<genre>/...`` exists."""
    archive, dest = Path(archive), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    logger.info("Extracting %s into %s", archive, dest)
    try:
        _extract_into(archive, staging)
        found = _find_layout(staging)
        if found is None:
            raise DownloadError(
                f"{archive} holds no genres/<genre>/ or genres_original/<genre>/ folder with audio"
            )
        for child in sorted(found.parent.iterdir()):  # the layout folder and its siblings
            target = dest / child.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(child, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    layout, n = find_audio(dest)
    assert layout is not None
    return layout, n


# --------------------------------------------------------------------------------------------
# Entry points


def _mirrors(
    urls: str | Iterable[str | Mapping[str, Any]] | None, sha256: str | None
) -> list[Mirror]:
    if urls is None:
        urls = DEFAULT_URLS
    if isinstance(urls, str):
        urls = [urls]
    out = []
    for entry in urls:
        if isinstance(entry, Mapping):
            digest = entry.get("sha256", sha256)
            out.append(Mirror(str(entry["url"]), _norm_sha(digest)))
        else:
            out.append(Mirror(str(entry), _norm_sha(sha256)))
    if not out:
        raise ValueError("no mirror URL given")
    return out


def _norm_sha(value: str | None) -> str | None:
    if value is None or str(value).strip().lower() in ("", "none", "null", "skip"):
        return None
    value = str(value).strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"sha256 must be 64 hex digits, got {value!r}")
    return value


def fetch_gtzan(
    urls: str | Iterable[str | Mapping[str, Any]] | None = None,
    sha256: str | None = GTZAN_SHA256,
    dest_dir: str | os.PathLike[str] = DEFAULT_DEST,
    archive_path: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
    read_timeout: float = 60.0,
    retries: int = 3,
    keep_archive: bool = False,
    force: bool = False,
    progress: bool = True,
    url: str | None = None,
) -> DownloadResult:
    """Make sure GTZAN is under ``dest_dir``; see the module docstring for the steps.

    ``urls`` is a mirror list tried in order (strings, or ``{url, sha256}`` mappings for a
    mirror with its own digest); ``url`` is a one-mirror shorthand. ``sha256=None`` skips the
    check. ``timeout`` bounds connecting (so an offline machine fails at once), ``read_timeout``
    a stalled transfer; ``retries`` is how many times a lost connection is retried without
    progress.
    """
    t0 = time.monotonic()
    dest = Path(dest_dir)
    archive = Path(archive_path) if archive_path else dest.parent / "genres.tar.gz"
    if not force:
        layout, n = find_audio(dest)
        if layout:
            logger.info("GTZAN already present: %d audio files in %s; nothing to download",
                        n, dest / layout)  # fmt: skip
            return DownloadResult(dest, layout, n, None, None, time.monotonic() - t0, True, None)
    mirrors = _mirrors(url if url is not None else urls, sha256)
    archive.parent.mkdir(parents=True, exist_ok=True)

    digest: str | None = None
    used: str | None = None
    if archive.is_file():
        accepted = {m.sha256 for m in mirrors}
        digest = sha256_file(archive)
        if None in accepted or digest in accepted:
            logger.info("Using the archive already at %s (sha256 %s)", archive, digest)
            used = "file://" + str(archive.resolve())
        else:
            logger.warning("%s has sha256 %s, not the pinned one; deleting it", archive, digest)
            archive.unlink()
            digest = None
    if used is None:
        digest, used = _download_any(mirrors, archive, dest, timeout=timeout,
                                     read_timeout=read_timeout, retries=retries,
                                     progress=progress)  # fmt: skip

    layout, n = extract_archive(archive, dest)
    kept: Path | None = archive
    if not keep_archive:
        archive.unlink()
        kept = None
    logger.info("GTZAN ready: %d audio files in %s", n, dest / layout)
    return DownloadResult(dest, layout, n, digest, used, time.monotonic() - t0, False, kept)


def _download_any(mirrors: list[Mirror], archive: Path, dest: Path, **kw: Any) -> tuple[str, str]:
    failures: list[tuple[str, str]] = []
    unreachable = checksum = 0
    for mirror in mirrors:
        try:
            return _download_verified(mirror, archive, **kw), mirror.url
        except _Unreachable as exc:
            unreachable += 1
            failures.append((mirror.url, str(exc)))
        except ChecksumMismatchError as exc:
            checksum += 1
            failures.append((mirror.url, str(exc)))
        except DownloadError as exc:
            failures.append((mirror.url, str(exc)))
        logger.warning("Mirror %s failed: %s", *failures[-1])
    tried = "\n".join(f"  - {u}: {why}" for u, why in failures)
    how = manual_instructions(dest, archive)
    if unreachable == len(mirrors):
        raise MirrorsUnreachableError(
            f"Cannot download GTZAN: no mirror could be reached (offline?). Tried:\n{tried}\n{how}"
        )
    cls = ChecksumMismatchError if checksum else DownloadError
    raise cls(f"Cannot download GTZAN. Tried:\n{tried}\n{how}")


_KNOWN = {
    "urls", "url", "sha256", "dest_dir", "archive_path", "timeout", "read_timeout", "retries",
    "keep_archive", "force", "progress",
}  # fmt: skip


def fetch_gtzan_from_params(params: Mapping[str, Any] | None) -> DownloadResult:
    """:func:`fetch_gtzan` driven by the ``download`` parameters block."""
    params = dict(params or {})
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown download parameter(s) {unknown}; known: {sorted(_KNOWN)}")
    return fetch_gtzan(**params)


def download_gtzan(
    urls: str | Iterable[str | Mapping[str, Any]] | None = None,
    sha256: str | None = GTZAN_SHA256,
    dest_dir: str | os.PathLike[str] = DEFAULT_DEST,
    archive_path: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
    retries: int = 3,
    **kwargs: Any,
) -> Path:
    """Fetch, verify and extract GTZAN; return ``dest_dir`` (see :func:`fetch_gtzan`)."""
    return fetch_gtzan(
        urls=urls, sha256=sha256, dest_dir=dest_dir, archive_path=archive_path,
        timeout=timeout, retries=retries, **kwargs,
    ).root  # fmt: skip


# --------------------------------------------------------------------------------------------
# Command line


def _project_root() -> Path:
    here = Path(__file__).resolve().parents[2]
    if (here / PARAMS_FILE).is_file():
        return here
    return Path.cwd()


def load_defaults(root: Path | None = None) -> dict[str, Any]:
    """The ``download`` parameters as ``kedro run`` sees them (base + local), paths absolute.

    Read with Kedro's OmegaConfigLoader so ``${runtime_params:raw_root, ...}`` and
    ``${globals:...}`` resolve as in a run; plain YAML when Kedro is not importable.
    """
    root = root or _project_root()
    conf = root / "conf"
    if not (root / PARAMS_FILE).is_file():
        return {}
    try:
        from kedro.config import OmegaConfigLoader
    except ImportError:  # pragma: no cover - Kedro is a dependency of the project
        import yaml

        params = (yaml.safe_load((root / PARAMS_FILE).read_text()) or {}).get("download")
    else:
        loader = OmegaConfigLoader(str(conf), base_env="base", default_run_env="local")
        params = loader["parameters"].get("download")
    params = dict(params or {})
    for key in ("dest_dir", "archive_path"):
        if params.get(key) and not Path(params[key]).is_absolute():
            params[key] = str(root / params[key])
    return params


def main(argv: list[str] | None = None) -> int:
    defaults = load_defaults()
    parser = argparse.ArgumentParser(
        prog="python -m music_genre.download",
        description="Download GTZAN (genres.tar.gz, ~1.2 GB), check its sha256 and extract it. "
        f"Defaults come from {PARAMS_FILE}.",
    )
    parser.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help="mirror URL; repeat for several, tried in order")  # fmt: skip
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256, or 'none' to skip")
    parser.add_argument("--dest", dest="dest_dir", metavar="DIR", help="where genres/ goes")
    parser.add_argument("--archive", dest="archive_path", metavar="PATH",
                        help="where the archive is downloaded")  # fmt: skip
    parser.add_argument("--timeout", type=float, help="connect timeout in seconds")
    parser.add_argument("--retries", type=int, help="retries after a lost connection")
    parser.add_argument("--keep-archive", action="store_true", default=None)
    parser.add_argument("--force", action="store_true", default=None,
                        help="download even if audio is already in place")  # fmt: skip
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    if "dest_dir" in args and "archive_path" not in args:
        defaults.pop("archive_path", None)  # download next to --dest, not into the project
    params = {**defaults, **args}
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = fetch_gtzan_from_params(params)
    except (DownloadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.receipt(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
