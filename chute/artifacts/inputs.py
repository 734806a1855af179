"""Input artifacts placed at their path before a step starts, and outputs collected after.

The engine makes two calls per step:

- :func:`place_inputs` before launch, with the template's resolved ``inputs.artifacts``,
  a mapping from artifact name to the host path where it goes, and the records of
  upstream outputs (``from``). Sources: a record (``from``), ``s3`` (a key in the default
  repository, or a bucket/endpoint of its own), ``http`` (url, headers, basic auth from
  secrets; checksum from a ``#sha256=<hex>`` URL fragment or the ``checksum`` argument;
  link-local/metadata hosts refused), ``raw`` (data), ``git`` (repo, revision, depth).
  Returns an :class:`InputRecord` per artifact (digest for cache keys) or None for a
  missing ``optional: true`` one.
- :func:`save_outputs` after the step, with ``outputs.artifacts`` and the host paths the
  step wrote; returns an :class:`~chute.artifacts.repository.ArtifactRecord` per artifact,
  or None for a missing optional one.

A missing non-optional artifact is a :class:`~chute.errors.NotFoundError` naming the
artifact and key (never a credential).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from chute.artifacts.archive import sniff
from chute.artifacts.digest import CHUNK, format_digest, parse_checksum
from chute.artifacts.egress import EgressRefused, check_url, redact_url
from chute.artifacts.repository import ArtifactRecord, ArtifactRepository, archive_format
from chute.errors import NotFoundError, UnsupportedError, UserError

MAX_REDIRECTS = 5
HTTP_TIMEOUT = 60.0
GIT_TIMEOUT = 600


@dataclass(frozen=True)
class InputRecord:
    """How an input artifact was placed: where from, and the digest of what was placed."""

    name: str
    path: str  # host path where it was placed
    source: str  # "repository", "s3", "http", "raw" or "git"
    location: str  # key URI, redacted URL or repo (never credentials)
    digest: str  # sha256 of the fetched bytes; "git:<commit>" for git
    size: int | None = None


def as_dict(obj: Any) -> dict[str, Any]:
    """A spec object (pydantic model with Argo aliases, or a mapping) as a plain dict."""
    if obj is None:
        return {}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(by_alias=True, exclude_none=True)
    return dict(obj)


# ------------------------------------------------------------------------------ outputs


def save_outputs(repository: ArtifactRepository, artifacts: list[Any],
                 host_paths: Mapping[str, Path | str], *, workflow_uid: str, node_id: str,
                 link: bool = True, root: Path | str | None = None
                 ) -> dict[str, ArtifactRecord | None]:
    """Store every output artifact of a step. ``host_paths`` maps each artifact's step
    ``path`` to where it is on the host (``StepResult.outputs``); ``root`` is the step's
    filesystem view (``step_dir/root``), the only place an output symlink may lead."""
    out: dict[str, ArtifactRecord | None] = {}
    for i, spec in enumerate(artifacts):
        art = as_dict(spec)
        name, path = art.get("name"), art.get("path")
        where = f"outputs.artifacts[{i}]"
        if not name or not path:
            raise UserError(f"{where}: an output artifact needs a name and a path")
        host = host_paths.get(path)
        s3 = art.get("s3") or {}
        if set(s3) - {"key"}:
            raise UnsupportedError(f"{where}.s3: only a key in the default repository is "
                                   "supported for outputs")
        if host is None or not (Path(host).exists() or Path(host).is_symlink()):
            if art.get("optional"):
                out[name] = None
                continue
            raise NotFoundError(f"{where} {name!r}: {path} was not produced by the step")
        out[name] = repository.save(host, name=name, workflow_uid=workflow_uid,
                                    node_id=node_id, archive=art.get("archive"),
                                    key=s3.get("key"), step_path=path, link=link, root=root)
    return out


# ------------------------------------------------------------------------------- inputs


def place_inputs(repository: ArtifactRepository, artifacts: list[Any],
                 dest_for: Mapping[str, Path | str] | Callable[[str], Path | str],
                 records: Mapping[str, ArtifactRecord | None] | None = None,
                 secrets=None) -> dict[str, InputRecord | None]:
    """Place every input artifact; ``dest_for`` gives the host path per artifact name,
    ``records`` the resolved ``from`` output per artifact name."""
    records = records or {}
    out: dict[str, InputRecord | None] = {}
    for i, spec in enumerate(artifacts):
        art = as_dict(spec)
        name = art.get("name") or f"#{i}"
        dest = dest_for(name) if callable(dest_for) else dest_for[name]
        out[name] = place_input(art, dest, repository=repository, record=records.get(name),
                                secrets=secrets, where=f"inputs.artifacts[{i}]")
    return out


def place_input(artifact: Any, dest: Path | str, *, repository: ArtifactRepository,
                record: ArtifactRecord | None = None, secrets=None, checksum: str | None = None,
                where: str = "input artifact") -> InputRecord | None:
    """Place one input artifact at the new path ``dest``; None if optional and missing."""
    art = as_dict(artifact)
    name = art.get("name", "")
    where = f"{where} {name!r}" if name else where
    dest = Path(dest)
    try:
        rec = _fetch(art, dest, repository, record, secrets, checksum, where)
    except NotFoundError:
        if art.get("optional"):
            return None
        raise
    if art.get("mode") is not None:
        _chmod(dest, int(art["mode"]), bool(art.get("recurseMode")))
    return rec


def _fetch(art, dest, repository, record, secrets, checksum, where) -> InputRecord:
    sub = art.get("subPath")
    if record is not None or art.get("from") or art.get("fromExpression"):
        if record is None:
            raise NotFoundError(f"{where}: the artifact it comes from was not produced")
        repository_for_record(repository, record).load(record, dest, sub_path=sub, where=where)
        return InputRecord(art.get("name", record.name), str(dest), "repository", record.uri,
                           record.digest, record.size)
    if "raw" in art:
        data = str((art["raw"] or {}).get("data", "")).encode("utf-8")
        _write_new(dest, data)
        return InputRecord(art.get("name", ""), str(dest), "raw", "raw",
                           format_digest(hashlib.sha256(data).hexdigest()), len(data))
    if "s3" in art:
        return _fetch_s3(art, dest, repository, secrets, sub, where)
    if "http" in art:
        return _fetch_http(art, dest, repository, secrets, checksum, sub, where)
    if "git" in art:
        return _fetch_git(art, dest, where)
    kinds = [k for k in ("gcs", "azure", "oss", "hdfs", "artifactory", "plugin") if k in art]
    if kinds:
        raise UnsupportedError(f"{where}.{kinds[0]}: not supported by the local runtime")
    raise NotFoundError(f"{where}: no source (from, s3, http, raw or git) was given")


def repository_for_record(default: ArtifactRepository, record: ArtifactRecord):
    """The repository that holds ``record`` (the default one, unless told otherwise)."""
    if record.repository != default.uri:
        raise UserError(f"artifact {record.name!r} is in {record.repository}, not in the "
                        f"configured repository {default.uri}")
    return default


def _fetch_s3(art, dest, repository, secrets, sub, where) -> InputRecord:
    from chute.artifacts.s3 import S3Backend, S3Config

    block = dict(art["s3"] or {})
    key = block.pop("key", None)
    if not key:
        raise UserError(f"{where}.s3.key: required")
    if not (set(block) & {"bucket", "endpoint"}):
        repo = repository  # key-only artifact: a key in the default repository
    else:
        cfg = S3Config.from_argo(block, f"{where}.s3", defaults=repository.s3_config)
        repo = ArtifactRepository(S3Backend(cfg, secrets))
    _ensure_absent(dest, where)
    repo.load(key, dest, archive=art.get("archive"), sub_path=sub, where=where)
    digest, size = _placed_digest(dest)
    return InputRecord(art.get("name", ""), str(dest), "s3",
                       repo.backend.describe(key), digest, size)


def _fetch_http(art, dest, repository, secrets, checksum, sub, where) -> InputRecord:
    import httpx

    http = dict(art["http"] or {})
    url = str(http.get("url") or "")
    if not url:
        raise UserError(f"{where}.http.url: required")
    parts = urlsplit(url)
    if parts.fragment.startswith("sha256="):
        checksum = checksum or parts.fragment
        url = urlunsplit(parts._replace(fragment=""))
    want = parse_checksum(checksum) if checksum else None
    headers = {str(h["name"]): str(h["value"]) for h in http.get("headers") or []}
    auth = _http_auth(http.get("auth"), secrets, where)
    _ensure_absent(dest, where)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".chute-http-{uuid.uuid4().hex}"
    sha = hashlib.sha256()
    size = 0
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False, trust_env=False) as c:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                check_url(current, f"{where}.http.url")
                with c.stream("GET", current, headers=headers, auth=auth) as resp:
                    if resp.is_redirect:
                        current = urljoin(current, resp.headers.get("location", ""))
                        continue
                    if resp.status_code == 404:
                        raise NotFoundError(f"{where}: {redact_url(current)} answered 404")
                    if resp.status_code >= 400:
                        raise UserError(
                            f"{where}: {redact_url(current)} answered HTTP {resp.status_code}")
                    with open(tmp, "wb") as f:
                        for chunk in resp.iter_bytes(CHUNK):
                            sha.update(chunk)
                            size += len(chunk)
                            f.write(chunk)
                    break
            else:
                raise UserError(f"{where}: more than {MAX_REDIRECTS} redirects from "
                                f"{redact_url(url)}")
        if want and sha.hexdigest() != want:
            raise UserError(f"{where}: checksum mismatch for {redact_url(url)}: expected "
                            f"sha256:{want}, got sha256:{sha.hexdigest()}")
        _unpack_download(tmp, dest, art.get("archive"), sub, where)
    except httpx.HTTPError as exc:
        raise UserError(f"{where}: cannot fetch {redact_url(url)}: {type(exc).__name__}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return InputRecord(art.get("name", ""), str(dest), "http", redact_url(url),
                       format_digest(sha.hexdigest()), size)


def _http_auth(auth, secrets, where):
    if not auth:
        return None
    from chute.secrets import resolve_selector

    auth = as_dict(auth)
    basic = auth.get("basicAuth")
    if basic and set(auth) == {"basicAuth"}:
        return (resolve_selector(basic.get("usernameSecret"),
                                 f"{where}.http.auth.basicAuth.usernameSecret", secrets),
                resolve_selector(basic.get("passwordSecret"),
                                 f"{where}.http.auth.basicAuth.passwordSecret", secrets))
    raise UnsupportedError(f"{where}.http.auth: only basicAuth is supported locally")


def _unpack_download(tmp: Path, dest: Path, archive, sub, where) -> None:
    """Argo's rule for a downloaded input: unpack a tarball, a zip when asked, else keep."""
    fmt, _ = archive_format(archive, f"{where}.archive") if archive else ("", None)
    with open(tmp, "rb") as f:
        found = sniff(f.read(4))
    repo = ArtifactRepository.local(tempfile.mkdtemp(prefix=".chute-dl-", dir=tmp.parent))
    try:
        if fmt == "none" or found == "none" or (found == "zip" and fmt != "zip"):
            if sub:
                raise UserError(f"{where}.subPath: the artifact is a single file")
            os.rename(tmp, dest)
            return
        key = "download.tgz" if found == "tgz" else "download.zip"
        os.rename(tmp, repo.backend.root / key)
        repo.load(key, dest, archive=archive, sub_path=sub, where=where)
    finally:
        shutil.rmtree(repo.backend.root, ignore_errors=True)


def _fetch_git(art, dest, where) -> InputRecord:
    git = dict(art["git"] or {})
    repo_url = str(git.get("repo") or "")
    if not repo_url:
        raise UserError(f"{where}.git.repo: required")
    for field in ("usernameSecret", "passwordSecret", "sshPrivateKeySecret"):
        if git.get(field):
            raise UnsupportedError(f"{where}.git.{field}: git credentials are not supported "
                                   "locally yet; use a file:// or public repository")
    if shutil.which("git") is None:
        raise UnsupportedError(f"{where}.git: git is not installed on this machine")
    scheme = urlsplit(repo_url).scheme.lower()
    if scheme in ("http", "https"):
        check_url(repo_url, f"{where}.git.repo")
    elif scheme not in ("file", "ssh", "git") and not (":" in repo_url and "@" in repo_url):
        raise EgressRefused(f"{where}.git.repo: scheme {scheme or 'none'!r} is not allowed "
                            "(file, http, https, ssh, git)")
    _ensure_absent(dest, where)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".chute-git-{uuid.uuid4().hex}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "file:http:https:ssh:git",
           "GIT_CONFIG_NOSYSTEM": "1"}
    depth = git.get("depth")
    rev = git.get("revision") or (git.get("branch") if git.get("singleBranch") else None)
    base = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet"]
    if git.get("singleBranch") and git.get("branch"):
        base += ["--single-branch", "--branch", str(git["branch"])]

    def run(argv, cwd=None):
        try:
            return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                                  check=False, timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UserError(f"{where}: git {argv[3] if len(argv) > 3 else ''} of "
                            f"{redact_url(repo_url)} took more than {GIT_TIMEOUT}s") from None

    try:
        p = None
        if depth and rev:
            p = run(base + ["--depth", str(int(depth)), "--branch", str(rev), "--", repo_url,
                            str(tmp)])
        if p is None or p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            argv = base + (["--depth", str(int(depth))] if depth and not rev else [])
            p = run(argv + ["--", repo_url, str(tmp)])
            if p.returncode != 0:
                raise NotFoundError(f"{where}: git clone of {redact_url(repo_url)} failed: "
                                    f"{p.stderr.strip()[-300:]}")
            if rev:
                p = run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet",
                         str(rev), "--"], cwd=tmp)
                if p.returncode != 0:
                    raise NotFoundError(f"{where}: git revision {rev!r} not found in "
                                        f"{redact_url(repo_url)}")
        for ref in git.get("fetch") or []:
            run(["git", "fetch", "--quiet", "origin", str(ref)], cwd=tmp)
        commit = run(["git", "rev-parse", "HEAD"], cwd=tmp).stdout.strip()
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return InputRecord(art.get("name", ""), str(dest), "git", redact_url(repo_url),
                       f"git:{commit}")


def _ensure_absent(dest: Path, where: str) -> None:
    if dest.is_symlink() or (dest.exists() and not (dest.is_dir() and not any(dest.iterdir()))):
        raise UserError(f"{where}: {dest} already exists")
    if dest.is_dir():
        dest.rmdir()


def _write_new(dest: Path, data: bytes) -> None:
    _ensure_absent(dest, "raw artifact")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".chute-raw-{uuid.uuid4().hex}"
    tmp.write_bytes(data)
    os.rename(tmp, dest)


def _placed_digest(dest: Path) -> tuple[str, int]:
    from chute.artifacts.digest import file_digest
    from chute.artifacts.repository import tree_digest

    return tree_digest(dest) if dest.is_dir() else file_digest(dest)


def _chmod(dest: Path, mode: int, recurse: bool) -> None:
    if not 0 <= mode <= 0o777:
        raise UserError(f"input artifact mode {mode} is not between 0 and 0777")
    paths = [dest]
    if recurse and dest.is_dir():
        paths += [p for p in dest.rglob("*") if not p.is_symlink()]
    for p in paths:
        os.chmod(p, mode)
