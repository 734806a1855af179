"""Secrets into steps: ``env[].valueFrom.secretKeyRef`` resolved from the local secret store.

On Argo a container's ``env`` entry ``valueFrom: {secretKeyRef: {name, key}}`` names a
Kubernetes Secret; locally it names a secret of :class:`chute.secrets.SecretStore`. The
pod layer lists the references (:func:`secret_env_refs`, no values: a LaunchRequest is
plain data that may be logged or kept); the controller resolves them at launch
(:func:`resolve_env`), which yields the env values plus every *form* of each value
(:func:`secret_forms`: raw, base64, URL-encoded, hex) for ``LaunchSpec.secret_values``, so
the supervisor masks a secret in logs and ``outputs.result`` whichever way a step prints it.

What the executor cannot mask the controller scrubs after the attempt
(:func:`mask_text` for output parameter files read into node status;
:func:`chute.executors.stepfiles.scrub_step_dir` for files kept in the step directory, ``launch.json`` included,
which carries the env for the supervisor). Errors name the secret and key, never a value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from chute.errors import ChuteError, NotFoundError, UserError
from chute.executors.stepfiles import scrub_step_dir

MASK = "***"


class SecretRefError(ChuteError):
    """A secretKeyRef that cannot be resolved (the node fails with this message)."""


def secret_env_refs(env: Iterable[Mapping[str, Any]] | None,
                    sub: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """The ``secretKeyRef`` entries of a container's ``env``: ``{env, name, key, optional}``
    each (``name``/``key`` substituted with ``sub``, as Argo substitutes the template)."""
    refs = []
    for e in env or []:
        ref = ((e.get("valueFrom") or {}).get("secretKeyRef"))
        if ref is None or e.get("value") is not None:
            continue
        refs.append({"env": str(e.get("name", "")), "name": sub(str(ref.get("name") or "")),
                     "key": sub(str(ref.get("key") or "")),
                     "optional": bool(ref.get("optional"))})
    return refs


def resolve_env(refs: Iterable[Mapping[str, Any]], store=None
                ) -> tuple[dict[str, str], list[str]]:
    """Resolve secret env references: ``(env name -> value, forms to mask)``.

    ``store`` is a :class:`~chute.secrets.SecretStore` or its directory (the
    controller's ``settings.secrets_dir``); the default store of the environment if None.

    A missing secret or key raises :class:`SecretRefError` naming the env variable, the
    secret and the key (Kubernetes: ``CreateContainerConfigError``); ``optional: true``
    references that are missing are left unset, as Kubernetes does."""
    from chute.secrets import SecretStore

    refs = list(refs)
    if not refs:
        return {}, []
    if not isinstance(store, SecretStore):
        store = SecretStore(store)  # None: the settings of the environment
    env: dict[str, str] = {}
    for r in refs:
        where = f"env {r['env']!r}: secretKeyRef {{name: {r['name']!r}, key: {r['key']!r}}}"
        if not r["name"] or not r["key"]:
            raise SecretRefError(f"{where}: a secret reference needs 'name' and 'key'")
        try:
            env[r["env"]] = store.get(r["name"], r["key"])
        except UserError as exc:
            if r.get("optional") and isinstance(exc, NotFoundError):
                continue
            # the store's messages name the secret and key only; keep ours short and plain
            raise SecretRefError(f"{where}: {exc}") from None
    forms: list[str] = []
    for value in env.values():
        forms.extend(secret_forms(value))
    return env, forms


def secret_forms(value: str) -> list[str]:
    """Every form of ``value`` a step may print: raw, base64 (standard, URL-safe, and
    without padding), URL-encoded, hex (lower and upper case); longest first."""
    if not value:
        return []
    raw = value.encode("utf-8")
    b64 = base64.b64encode(raw).decode()
    forms = {value, b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
             quote(value, safe=""), quote(value), quote_plus(value), raw.hex(), raw.hex().upper()}
    return sorted((f for f in forms if f), key=len, reverse=True)


def mask_text(text: str, forms: Iterable[str]) -> str:
    """``text`` with each of ``forms`` (longest first) replaced by ``***``."""
    for f in sorted(set(forms), key=len, reverse=True):
        if f and f in text:
            text = text.replace(f, MASK)
    return text


def mask_files(files: dict[str, str | None], forms: Iterable[str]) -> dict[str, str | None]:
    """Output files read for a node (step path -> content) with secrets masked."""
    forms = list(forms)
    if not forms:
        return files
    return {k: (None if v is None else mask_text(v, forms)) for k, v in files.items()}


def after_attempt(step_dir: Path | str | None, files: dict[str, str | None],
                  request: Any = None) -> dict[str, str | None]:
    """Once an attempt has ended: mask the secrets it was given (``secret_values`` of its
    ``launch.json``) in the output files read for it, and scrub its step directory.
    ``request`` (the attempt's LaunchRequest, when the controller still has it) saves the
    file read for the many steps that have no secret references."""
    import json

    if not step_dir or (request is not None and not getattr(request, "secret_env", None)):
        return files
    try:
        spec = json.loads((Path(step_dir) / "launch.json").read_bytes())
    except (OSError, ValueError):
        return files
    forms = [f for f in (spec.get("secret_values") or []) if isinstance(f, str) and f]
    if not forms:
        return files
    scrub_step_dir(step_dir, forms)
    return mask_files(files, forms)
