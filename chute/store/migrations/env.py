"""Alembic environment: runs migrations on the connection chute.store.db hands over."""

from __future__ import annotations

from alembic import context

from chute.store.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate on the connection passed in ``config.attributes['connection']``."""
    connection = context.config.attributes.get("connection")
    if connection is None:  # `alembic` command line: build an engine from the URL
        from sqlalchemy import create_engine

        engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
        with engine.connect() as conn:
            _run(conn)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
