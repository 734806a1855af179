"""The local secret store: what a Kubernetes Secret is to Argo, a file under the chute home.

Each secret is one JSON file ``<secrets_dir>/<name>.json`` holding base64 values by key,
written atomically with mode 0600 inside a 0700 directory (owner only). Names follow
Kubernetes (a DNS subdomain: lowercase letters, digits, ``-`` and ``.``), keys follow
Kubernetes Secret keys (letters, digits, ``-``, ``_``, ``.``), so a spec's
``secretKeyRef: {name, key}`` means the same thing here and on a cluster.

The store never prints values: :meth:`SecretStore.list` gives names and keys only, and
errors name the secret and key, never the value. :func:`resolve_secret_ref` is what the
engine calls for ``env[].valueFrom.secretKeyRef`` and the artifact credential references
(``accessKeySecret``, ``secretKeySecret``); it also returns nothing for the log masker to
guess: callers add the value to ``LaunchSpec.secret_values``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chute.errors import NotFoundError, UserError

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def check_secret_name(name: str) -> str:
    """Return ``name`` if it is a valid Kubernetes object name, else raise UserError."""
    if not isinstance(name, str) or not name or len(name) > 253 or not _NAME.fullmatch(name):
        raise UserError(
            f"secret name {name!r} is invalid: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253 characters)")
    return name


def check_secret_key(key: str, secret: str = "") -> str:
    """Return ``key`` if it is a valid Kubernetes Secret data key, else raise UserError."""
    if not isinstance(key, str) or not key or len(key) > 253 or not _KEY.fullmatch(key) \
            or key in (".", ".."):
        where = f" in secret {secret!r}" if secret else ""
        raise UserError(
            f"secret key {key!r}{where} is invalid: use letters, digits, '-', '_' and '.'")
    return key


@dataclass(frozen=True)
class SecretInfo:
    """A secret as listed: its name and keys, never its values."""

    name: str
    keys: tuple[str, ...]


class SecretStore:
    """Secrets under ``root`` (default: ``Settings.secrets_dir``), readable by the owner only."""

    def __init__(self, root: Path | str | None = None):
        if root is None:
            from chute.config import load_settings

            root = load_settings().secrets_dir
        self.root = Path(root)

    # -- files
    def _dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            os.chmod(self.root, 0o700)
        return self.root

    def _path(self, name: str) -> Path:
        return self.root / f"{check_secret_name(name)}.json"

    def _read(self, name: str) -> dict[str, str]:
        path = self._path(name)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise NotFoundError(f"secret {name!r} not found") from None
        except (OSError, ValueError):
            raise UserError(f"secret {name!r} is unreadable (file {path})") from None
        return dict(doc.get("data", {}))

    # -- API
    def create(self, name: str, data: Mapping[str, str | bytes], overwrite: bool = False) -> None:
        """Store secret ``name`` with ``data`` (key -> value); refuse to replace unless told."""
        check_secret_name(name)
        if not data:
            raise UserError(f"secret {name!r} needs at least one key")
        encoded = {}
        for key, value in data.items():
            check_secret_key(key, name)
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            encoded[key] = base64.b64encode(raw).decode("ascii")
        path = self._path(name)
        d = self._dir()
        if path.exists() and not overwrite:
            from chute.errors import ConflictError

            raise ConflictError(f"secret {name!r} already exists (delete it first)")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=d)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"name": name, "data": encoded}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get_bytes(self, name: str, key: str) -> bytes:
        """The value of ``key`` in secret ``name`` as bytes."""
        data = self._read(name)
        if key not in data:
            raise NotFoundError(f"secret {name!r} has no key {key!r}")
        return base64.b64decode(data[key])

    def get(self, name: str, key: str) -> str:
        """The value of ``key`` in secret ``name`` as text (UTF-8)."""
        raw = self.get_bytes(name, key)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"secret {name!r} key {key!r} is binary, not text") from None

    def list(self) -> list[SecretInfo]:
        """Every secret's name and keys, sorted by name."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob("*.json")):
            name = p.name[: -len(".json")]
            if not _NAME.fullmatch(name):
                continue
            out.append(SecretInfo(name, tuple(sorted(self._read(name)))))
        return out

    def delete(self, name: str) -> None:
        """Remove secret ``name``; NotFoundError if there is none."""
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFoundError(f"secret {name!r} not found") from None


def resolve_secret_ref(name: str, key: str, store: SecretStore | None = None) -> str:
    """Resolve a Kubernetes-style ``{name, key}`` secret reference against the local store."""
    return (store or SecretStore()).get(name, key)


def resolve_selector(ref, where: str, store: SecretStore | None = None) -> str:
    """Resolve a ``SecretKeySelector`` (mapping or model with ``name``/``key``), naming
    ``where`` (``s3.accessKeySecret``) when it is malformed or missing."""
    if hasattr(ref, "model_dump"):
        ref = ref.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("key"):
        raise UserError(f"{where}: a secret reference needs 'name' and 'key'")
    try:
        return resolve_secret_ref(str(ref["name"]), str(ref["key"]), store)
    except UserError as exc:
        raise type(exc)(f"{where}: {exc}") from None
