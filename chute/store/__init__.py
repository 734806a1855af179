"""chute.store: the metadata store (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

``db.open_store(settings)`` migrates to head (Alembic, ``migrations/``) and returns a
:class:`~chute.store.db.Store` with ``read()`` / ``write()`` sessions; ``models`` holds the
typed tables; ``queries`` the functions (session first, never committing) the engine, the
CLI and the server share; ``leases`` those by which controllers share the workflows.
"""
