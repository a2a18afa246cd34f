"""The GTZAN download step (music_genre.download) against a real HTTP server on 127.0.0.1 (no
internet needed; the server: tests/gtzan_server.py).
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from pathlib import Path

import pytest

from music_genre import download as dl
from tests.gtzan_server import TRACKS, Server, _sha, _tar_gz, _wav_bytes, _zip, no_proxy


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    no_proxy(monkeypatch)


def _fetch(server: Server, tmp_path: Path, sha256: str | None, **kw) -> dl.DownloadResult:
    kw.setdefault("urls", [server.url("/genres.tar.gz")])
    return dl.fetch_gtzan(
        sha256=sha256,
        dest_dir=tmp_path / "gtzan",
        archive_path=tmp_path / "genres.tar.gz",
        timeout=kw.pop("timeout", 2),
        read_timeout=kw.pop("read_timeout", 5),
        retries=2,
        progress=False,
        **kw,
    )


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("genres.tar.gz"))


# (a) ----------------------------------------------------------------------------------------
def test_good_download_verifies_and_extracts(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    result = _fetch(server, tmp_path, _sha(archive))

    dest = tmp_path / "gtzan"
    assert result.root == dest and result.layout == "genres" and result.n_files == 3
    assert result.sha256 == _sha(archive) and not result.skipped
    for i, track in enumerate(TRACKS):
        assert (dest / "genres" / track).read_bytes() == _wav_bytes(i)
    assert dl.find_audio(dest) == ("genres", 3)
    assert _leftovers(tmp_path) == []  # archive deleted after extraction (keep_archive=False)
    assert not (dest / ".extracting").exists()
    receipt = result.receipt()
    assert json.loads(json.dumps(receipt))["n_files"] == 3

    # A second run finds the audio in place and does not touch the network.
    n_requests = len(server.requests)
    again = _fetch(server, tmp_path, _sha(archive))
    assert again.skipped and again.n_files == 3 and len(server.requests) == n_requests


def test_kept_archive_is_reused_without_network(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    first = _fetch(server, tmp_path, _sha(archive), keep_archive=True)
    assert first.archive == tmp_path / "genres.tar.gz" and first.archive.is_file()
    n_requests = len(server.requests)
    again = _fetch(server, tmp_path, _sha(archive), force=True, urls=["http://gtzan.invalid/x"])
    assert again.n_files == 3 and again.url.startswith("file://")
    assert len(server.requests) == n_requests


def test_kaggle_zip_layout(server, tmp_path):
    members = {f"Data/genres_original/{t}": _wav_bytes(i) for i, t in enumerate(TRACKS)}
    members["Data/features_30_sec.csv"] = b"filename,label\n"
    data = _zip(members)
    server.files["/gtzan.zip"] = data
    result = _fetch(server, tmp_path, _sha(data), urls=[server.url("/gtzan.zip")])
    dest = tmp_path / "gtzan"
    assert (result.layout, result.n_files) == ("genres_original", 3)
    assert (dest / "genres_original" / TRACKS[0]).read_bytes() == _wav_bytes(0)
    assert (dest / "features_30_sec.csv").is_file()


# (b) ----------------------------------------------------------------------------------------
def test_corrupted_download_fails_checksum_and_leaves_nothing(server, archive, tmp_path):
    bad = bytearray(archive)
    bad[len(bad) // 2] ^= 0xFF
    server.files["/genres.tar.gz"] = bytes(bad)

    with pytest.raises(dl.ChecksumMismatchError) as err:
        _fetch(server, tmp_path, _sha(archive))

    msg = str(err.value)
    assert "checksum mismatch" in msg and _sha(archive) in msg and _sha(bytes(bad)) in msg
    assert "bad file was deleted" in msg and "by hand" in msg
    assert _leftovers(tmp_path) == []  # neither genres.tar.gz nor genres.tar.gz.part
    assert dl.find_audio(tmp_path / "gtzan") == (None, 0)
    # retried exactly once, from scratch (no Range on the second request)
    assert server.requests == [("/genres.tar.gz", None), ("/genres.tar.gz", None)]


def test_transient_corruption_is_fixed_by_one_clean_retry(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    server.first_response["/genres.tar.gz"] = archive[:-10] + b"0123456789"
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and len(server.requests) == 2


def test_bad_mirror_then_good_mirror(server, archive, tmp_path):
    server.files["/good.tar.gz"] = archive
    urls = [server.url("/missing.tar.gz"), server.url("/good.tar.gz")]
    result = _fetch(server, tmp_path, _sha(archive), urls=urls)
    assert result.url == urls[1] and result.n_files == 3


# (c) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stall", [0.0, 1.0], ids=["dropped", "stalled"])
def test_interrupted_download_resumes_with_range(server, archive, tmp_path, stall):
    server.files["/genres.tar.gz"] = archive
    server.drop_first_at = len(archive) // 3
    server.stall_s = stall  # a stalled transfer hits read_timeout=0.3 s, then resumes
    result = _fetch(server, tmp_path, _sha(archive), read_timeout=0.3)

    assert result.n_files == 3 and result.sha256 == _sha(archive)
    assert server.requests == [
        ("/genres.tar.gz", None),
        ("/genres.tar.gz", f"bytes={len(archive) // 3}-"),
    ]


def test_partial_file_from_an_earlier_run_is_resumed(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    (tmp_path / "genres.tar.gz.part").write_bytes(archive[:100])
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and server.requests == [("/genres.tar.gz", "bytes=100-")]


def test_server_without_range_restarts_cleanly(server, archive, tmp_path):
    server.files["/genres.tar.gz"] = archive
    server.ranges = False
    server.drop_first_at = len(archive) // 2
    result = _fetch(server, tmp_path, _sha(archive))
    assert result.n_files == 3 and len(server.requests) == 2  # asked for a range, got it all


# (d) ----------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mirrors_fail_at_once_with_manual_instructions(tmp_path):
    urls = [
        f"http://127.0.0.1:{_closed_port()}/genres.tar.gz",
        "http://gtzan.invalid/genres.tar.gz",
    ]
    t0 = time.monotonic()
    with pytest.raises(dl.MirrorsUnreachableError) as err:
        dl.fetch_gtzan(urls=urls, dest_dir=tmp_path / "gtzan",
                       archive_path=tmp_path / "genres.tar.gz", timeout=2, progress=False)  # fmt: skip
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    for url in urls:
        assert url in msg
    assert "connection refused" in msg and "could not be resolved" in msg
    assert "by hand" in msg
    assert str(tmp_path / "gtzan" / "genres_original") in msg
    assert str(tmp_path / "gtzan" / "genres") in msg
    assert 'kedro run --params "raw_root=/path/to/gtzan"' in msg
    assert _leftovers(tmp_path) == []


def test_cli_reports_unreachable_mirror(tmp_path, capsys):
    rc = dl.main(["--url", f"http://127.0.0.1:{_closed_port()}/g.tar.gz", "--sha256", "none",
                  "--dest", str(tmp_path / "gtzan"), "--archive", str(tmp_path / "g.tar.gz")])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "no mirror could be reached" in err and "by hand" in err


# (e) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../evil.wav", "genres/../../evil.wav", "/tmp/evil_gtzan.wav"])
def test_path_traversal_member_is_rejected(server, tmp_path, evil):
    data = _tar_gz({"genres/blues/blues.00000.wav": _wav_bytes(0), evil: b"pwned"})
    server.files["/genres.tar.gz"] = data
    with pytest.raises(dl.UnsafeArchiveError, match="outside"):
        _fetch(server, tmp_path, _sha(data))
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path.parent / "evil.wav").exists()
    assert not Path("/tmp/evil_gtzan.wav").exists()
    assert dl.find_audio(tmp_path / "gtzan") == (None, 0)
    assert not (tmp_path / "gtzan" / ".extracting").exists()


def test_zip_path_traversal_is_rejected(tmp_path):
    path = tmp_path / "evil.zip"
    path.write_bytes(_zip({"Data/genres_original/blues/blues.00000.wav": b"x", "../evil": b"x"}))
    with pytest.raises(dl.UnsafeArchiveError):
        dl.extract_archive(path, tmp_path / "gtzan")
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "gtzan" / "Data").exists()


def test_tar_links_are_skipped(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("genres/blues/blues.00000.wav")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("genres/blues/link.wav")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    path = tmp_path / "links.tar.gz"
    path.write_bytes(buf.getvalue())
    assert dl.extract_archive(path, tmp_path / "gtzan") == ("genres", 1)
    assert not (tmp_path / "gtzan" / "genres" / "blues" / "link.wav").exists()
