"""``chute secret create|list|delete``: the local stand-in for ``kubectl create secret``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chute.errors import UserError
from chute.secrets import SecretStore, check_secret_key

secret_app = typer.Typer(help="Manage secrets that specs reference (secretKeyRef).",
                         no_args_is_help=True)


def _parse_literal(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserError(f"--from-literal {key or item!r}: expected KEY=VALUE")
    return check_secret_key(key), value


def _parse_file(item: str) -> tuple[str, bytes]:
    key, sep, path = item.partition("=")
    if not sep:
        key, path = Path(item).name, item
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"--from-file {item!r}: no such file {str(p)!r}")
    return check_secret_key(key), p.read_bytes()


@secret_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Secret name (a Kubernetes name).")],
    from_literal: Annotated[list[str] | None, typer.Option(
        "--from-literal", help="KEY=VALUE (repeatable).")] = None,
    from_file: Annotated[list[str] | None, typer.Option(
        "--from-file", help="[KEY=]PATH (repeatable); KEY defaults to the file name.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing secret.")] = False,
) -> None:
    """Create a secret from literals and/or files."""
    data: dict[str, str | bytes] = {}
    for item in from_literal or []:
        k, v = _parse_literal(item)
        if k in data:
            raise UserError(f"secret {name!r}: key {k!r} given twice")
        data[k] = v
    for item in from_file or []:
        k, b = _parse_file(item)
        if k in data:
            raise UserError(f"secret {name!r}: key {k!r} given twice")
        data[k] = b
    if not data:
        raise UserError("chute secret create: give at least one --from-literal or --from-file")
    SecretStore().create(name, data, overwrite=overwrite)
    typer.echo(f"secret/{name} created")


@secret_app.command("list")
def list_secrets() -> None:
    """List secrets with their keys (never their values)."""
    secrets = SecretStore().list()
    if not secrets:
        typer.echo("No secrets.")
        return
    width = max(len(s.name) for s in secrets)
    typer.echo(f"{'NAME':<{width}}  KEYS")
    for s in secrets:
        typer.echo(f"{s.name:<{width}}  {','.join(s.keys)}")


@secret_app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Delete a secret."""
    SecretStore().delete(name)
    typer.echo(f"secret/{name} deleted")


def register(app: typer.Typer) -> None:
    """Add the ``secret`` command group to the chute CLI."""
    app.add_typer(secret_app, name="secret")
