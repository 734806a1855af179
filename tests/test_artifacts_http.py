"""HTTP input artifacts: download, checksum, unpacking, and the SSRF rules (S-6)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chute.artifacts import ArtifactRepository, place_input, place_inputs
from chute.artifacts.egress import EgressRefused, check_url
from chute.errors import NotFoundError, UserError


def _tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside\n"
        ti = tarfile.TarInfo("pkg/readme.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _evil_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ti = tarfile.TarInfo("../escaped.txt")
        ti.size = 1
        tar.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


FILES = {"/file.txt": b"hello over http\n", "/pkg.tgz": _tgz(), "/evil.tgz": _evil_tgz()}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "/file.txt")
            self.end_headers()
            return
        if self.path == "/auth":
            ok = self.headers.get("X-Token") == "t0k"
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(b"secret-data" if ok else b"")
            return
        body = FILES.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture
def repo(chute_home):
    return ArtifactRepository.from_settings()


def _art(url, **extra):
    return {"name": "h", "path": "/h", "http": {"url": url, **extra}}


def test_download_with_checksum_from_fragment_or_argument(tmp_path, repo, server):
    good = hashlib.sha256(FILES["/file.txt"]).hexdigest()
    rec = place_input(_art(f"{server}/file.txt#sha256={good}"), tmp_path / "a", repository=repo)
    assert (tmp_path / "a").read_bytes() == FILES["/file.txt"]
    assert rec.digest == f"sha256:{good}" and rec.size == len(FILES["/file.txt"])
    place_input(_art(f"{server}/to-file"), tmp_path / "b", repository=repo,
                checksum=f"sha256:{good}")
    assert (tmp_path / "b").read_bytes() == FILES["/file.txt"]
    with pytest.raises(UserError, match="checksum mismatch"):
        place_input(_art(f"{server}/file.txt"), tmp_path / "c", repository=repo,
                    checksum="sha256:" + "0" * 64)
    assert not (tmp_path / "c").exists()


def test_tarballs_are_unpacked_safely_and_headers_sent(tmp_path, repo, server):
    place_inputs(repo, [_art(f"{server}/pkg.tgz")], {"h": tmp_path / "pkg"})
    assert (tmp_path / "pkg" / "readme.txt").read_text() == "inside\n"
    place_inputs(repo, [_art(f"{server}/pkg.tgz") | {"archive": {"none": {}}}],
                 {"h": tmp_path / "raw.tgz"})
    assert (tmp_path / "raw.tgz").read_bytes() == FILES["/pkg.tgz"]
    with pytest.raises(UserError, match="'..'"):
        place_inputs(repo, [_art(f"{server}/evil.tgz")], {"h": tmp_path / "evil"})
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "evil").exists()
    place_inputs(repo, [_art(f"{server}/auth", headers=[{"name": "X-Token", "value": "t0k"}])],
                 {"h": tmp_path / "auth"})
    assert (tmp_path / "auth").read_text() == "secret-data"


def test_missing_url_is_not_found_and_optional_gives_none(tmp_path, repo, server):
    with pytest.raises(NotFoundError, match="/nope"):
        place_inputs(repo, [_art(f"{server}/nope")], {"h": tmp_path / "x"})
    assert place_inputs(repo, [_art(f"{server}/nope") | {"optional": True}],
                        {"h": tmp_path / "x"}) == {"h": None}


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[fe80::1]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://2852039166/",
    "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/", "file:///etc/passwd",
    "gopher://127.0.0.1/", "ftp://127.0.0.1/x",
])
def test_ssrf_targets_are_refused(url):
    with pytest.raises(UserError):
        check_url(url, "http.url")


def test_redirect_to_metadata_is_refused(tmp_path, repo, server):
    with pytest.raises(EgressRefused, match="metadata"):
        place_inputs(repo, [_art(f"{server}/to-metadata")], {"h": tmp_path / "x"})


def test_allow_list_limits_hosts(tmp_path, repo, server, monkeypatch):
    monkeypatch.setenv("CHUTE_EGRESS_ALLOW", "example.invalid")
    with pytest.raises(EgressRefused, match="CHUTE_EGRESS_ALLOW"):
        place_inputs(repo, [_art(f"{server}/file.txt")], {"h": tmp_path / "x"})
    port = server.rsplit(":", 1)[1]
    monkeypatch.setenv("CHUTE_EGRESS_ALLOW", f"127.0.0.1:{port}")
    place_inputs(repo, [_art(f"{server}/file.txt")], {"h": tmp_path / "y"})
    assert (tmp_path / "y").exists()
