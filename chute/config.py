"""Settings, read from the environment when asked for (never at import time).

``CHUTE_HOME``          where chute keeps its state (default ``~/.chute``)
``CHUTE_DATABASE_URL``  SQLAlchemy URL of the metadata store (default SQLite under home)
``CHUTE_SERVER``        URL of a running chute server; the CLI then talks to it
``CHUTE_TOKEN``         bearer token for that server
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where chute keeps its state and how it reaches its parts."""

    home: Path
    database_url: str
    server_url: str | None = None
    token: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        """Directory of the log store (one file per node)."""
        return self.home / "logs"

    @property
    def steps_dir(self) -> Path:
        """Directory of step working directories (one per node attempt)."""
        return self.home / "steps"

    @property
    def artifacts_dir(self) -> Path:
        """Directory of the default local artifact repository."""
        return self.home / "artifacts"

    @property
    def secrets_dir(self) -> Path:
        """Directory of the local secret store (owner-only)."""
        return self.home / "secrets"

    def ensure(self) -> "Settings":
        """Create the home directories if missing and return self."""
        for d in (self.home, self.logs_dir, self.steps_dir, self.artifacts_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("CHUTE_HOME") or Path.home() / ".chute").expanduser()
    db = env.get("CHUTE_DATABASE_URL") or f"sqlite:///{home / 'chute.db'}"
    return Settings(
        home=home,
        database_url=db,
        server_url=env.get("CHUTE_SERVER") or None,
        token=env.get("CHUTE_TOKEN") or None,
    )
