"""``chute server``: the REST API, the web UI and the controller in one process."""

from __future__ import annotations

import os

import typer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8746  # not Argo's 2746, which users often have port-forwarded


def register(app: typer.Typer) -> None:
    """Add the ``server`` command to the CLI."""

    @app.command("server")
    def server(
        host: str = typer.Option(DEFAULT_HOST, help="Address to listen on."),
        port: int = typer.Option(DEFAULT_PORT, help="Port to listen on."),
        controller: bool = typer.Option(
            True, "--controller/--no-controller",
            help="Run the workflow controller in this process.",
        ),
        log_level: str = typer.Option("info", help="uvicorn log level."),
        new_token: bool = typer.Option(
            False, "--new-token", help="Replace the stored API token with a new one (printed once).",
        ),
    ) -> None:
        """Serve the REST API and the web UI, and run the controller."""
        import uvicorn

        from chute.config import load_settings
        from chute.server.app import create_app

        settings = load_settings()
        if new_token:
            # the old token and every session signed with the old key stop working
            for name in ("token.sha256", "session.key"):
                (settings.home / "server" / name).unlink(missing_ok=True)
        # Steps inherit the controller's environment: the API token must not reach them.
        os.environ.pop("CHUTE_TOKEN", None)
        api = create_app(settings, controller=controller)
        token = api.state.ctx.new_token
        url = f"http://{host}:{port}"
        if token:
            # Printed once: only its hash is kept. Goes to the terminal, never to a log file.
            typer.echo(f"Generated an API token (shown only this once):\n\n    {token}\n")
            typer.echo(f"Use it with: export CHUTE_SERVER={url} CHUTE_TOKEN=<token>")
        typer.echo(f"chute server on {url} (UI and API; /api/v1/openapi.json)")
        # Open event streams and log tails would otherwise hold a Ctrl-C until they end.
        uvicorn.run(api, host=host, port=port, log_level=log_level, access_log=False,
                    timeout_graceful_shutdown=5)
