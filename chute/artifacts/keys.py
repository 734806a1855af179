"""Artifact keys: the one validator every key goes through, and the default key layout.

A key names an object (or a prefix of objects) inside an artifact repository. Keys come
from specs (``s3: {key: ...}``, ``subPath``), from URLs (the server's download route) and
from chute itself. :func:`safe_key` is the single gate (RELIABILITY.md §3.3 item 6, V-1,
S-5): relative, no ``.``/``..`` segments, no NUL or control characters, no backslash, no
leading ``/``, not percent-encoded twice — checked on the key as given *and* after one
percent-decoding, so ``..%2f`` is refused like ``../``. :func:`resolve_under` adds the
filesystem check: the real path stays under the store root.

Chute's own keys follow Argo's default layout with the workflow *uid* in front, so garbage
collection of one run can never touch another (L-4)::

    {workflow_uid}/{node_id}/{artifact_name}.tgz      tar+gzip (the default)
    {workflow_uid}/{node_id}/{artifact_name}.zip      zip
    {workflow_uid}/{node_id}/{artifact_name}/{file}   archive none: the file, or the
                                                      directory's files, as they are
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from chute.errors import UserError

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def _check_form(key: str, original: str, where: str) -> None:
    if "\x00" in key:
        raise UserError(f"{where}: artifact key {original!r} contains a NUL byte")
    if any(unicodedata.category(c) == "Cc" for c in key):
        raise UserError(f"{where}: artifact key {original!r} contains a control character")
    if "\\" in key:
        raise UserError(f"{where}: artifact key {original!r} contains a backslash")
    if key.startswith("/"):
        raise UserError(f"{where}: artifact key {original!r} must be relative (no leading '/')")
    if re.match(r"^[A-Za-z]:", key):
        raise UserError(f"{where}: artifact key {original!r} must be relative (drive letter)")
    segments = key.rstrip("/").split("/")
    for seg in segments:
        if seg in ("..", "."):
            raise UserError(f"{where}: artifact key {original!r} has a {seg!r} segment")
        if seg == "":
            raise UserError(f"{where}: artifact key {original!r} has an empty segment")


def safe_key(key: str, where: str = "artifact") -> str:
    """Return ``key`` without a trailing ``/`` if it is a safe relative key, else raise.

    ``where`` names the field in the error message (``inputs.artifacts[0].s3.key``).
    Raises :class:`chute.errors.UserError`.
    """
    if not isinstance(key, str) or key.strip("/") == "":
        raise UserError(f"{where}: artifact key {key!r} is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_LENGTH:
        raise UserError(f"{where}: artifact key is longer than {MAX_KEY_LENGTH} bytes")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{where}: artifact key {key!r} is not valid UTF-8") from None
    _check_form(key, key, where)
    decoded = unquote(key, errors="strict") if "%" in key else key
    if decoded != key:
        # One round of decoding is what a URL or a careless client applies; a key that
        # still holds escapes after it was encoded twice (%252e -> %2e), which is the
        # MLflow CVE-2024-1560 shape.
        if _ESCAPE.search(decoded):
            raise UserError(f"{where}: artifact key {key!r} is percent-encoded twice")
        _check_form(decoded, key, where)
    return key.rstrip("/")


def resolve_under(root: Path | str, key: str, where: str = "artifact") -> Path:
    """Return the real path of ``key`` under ``root``; raise if it resolves outside.

    The key is checked by :func:`safe_key`, then the joined path is resolved with
    ``os.path.realpath`` (following symlinks already on disk) and must stay in ``root``.
    """
    key = safe_key(key, where)
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, key))
    if path != real_root and not path.startswith(real_root + os.sep):
        raise UserError(f"{where}: artifact key {key!r} resolves outside the artifact store")
    return Path(path)


def check_name(name: str, what: str = "artifact name") -> str:
    """Validate one key segment chute builds from a name (artifact, node, uid)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise UserError(
            f"{what} {name!r} must be 1-253 characters of letters, digits, '.', '_', '-'"
        )
    return name


ARCHIVE_SUFFIX = {"tgz": ".tgz", "zip": ".zip"}


def artifact_key(workflow_uid: str, node_id: str, name: str, archive: str,
                 filename: str | None = None) -> str:
    """The default key of an output artifact (see the module docstring for the layout)."""
    parts = [check_name(workflow_uid, "workflow uid"), check_name(node_id, "node id")]
    check_name(name)
    if archive in ARCHIVE_SUFFIX:
        return "/".join(parts + [name + ARCHIVE_SUFFIX[archive]])
    if archive != "none":
        raise UserError(f"unknown archive format {archive!r}")
    key = "/".join(parts + [name])
    if filename:
        if "/" in filename:
            raise UserError(f"artifact file name {filename!r} must not contain '/'")
        key += "/" + safe_key(filename, "artifact file name")
    return key
