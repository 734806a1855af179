"""Opening the metadata store: engine, sessions, SQLite tuning and automatic migrations.

``open_store(settings)`` upgrades the schema to head (Alembic) before returning, as Argo's
controller does on start; a failed migration raises :class:`StoreError` and nothing runs.
All pending migrations run in one transaction (DDL is transactional on PostgreSQL and on
SQLite), so a migration that fails or is killed half-way leaves the database at its old
revision, data and schema intact. A database at a revision this build does not know (a
newer chute migrated it) fails startup with a StoreError naming the revision.

SQLite is tuned for several processes at once: WAL journal, ``busy_timeout`` of 30 s, and
``BEGIN IMMEDIATE`` for write transactions (so two writers queue on the lock up front
instead of failing with "database is locked" when a read transaction tries to upgrade).
Store functions take the session first and never commit: :meth:`Store.write` owns the
transaction.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from chute.config import Settings
from chute.store.checkpoint import FALLBACK_PAGES, Checkpointer
from chute.errors import StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 32_768  # per connection


class Store:
    """An open metadata store: the engine plus read and write session factories."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        writer = engine.execution_options(chute_write=True) if self.is_sqlite else engine
        self._write_sessions = sessionmaker(bind=writer, expire_on_commit=False)
        self._writer = writer
        # SQLite: each thread that commits with write_conn keeps its connection (see there)
        self._local = threading.local()
        self._held: list[Connection] = []
        self._held_lock = threading.Lock()
        self._checkpointer: Checkpointer | None = None  # started by the first write_conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short read-only session (a deferred transaction, rolled back at the end)."""
        with self._sessions() as session:
            try:
                yield session
            finally:
                session.expunge_all()  # keep loaded rows readable after the session
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        with self._write_sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """A write transaction on a bare Core connection (no ORM unit of work): the
        controller's hot path, where every turn commits a few executemany statements.

        On SQLite the calling thread keeps its connection between transactions (none is
        open in between, so no snapshot holds the WAL back): checking one out of the pool
        and back in cost more than the commit's statements. The transaction is begun and
        ended on the sqlite3 connection itself: SQLAlchemy's transaction objects and
        events cost ~15 us a commit on a warm cache, several times that on the cold one
        of a controller woken by a step's end. A Core statement run on ``conn`` meanwhile
        makes SQLAlchemy begin too (``_on_begin`` sees the transaction open and adds
        none); it is then ended through SQLAlchemy, which commits the same transaction."""
        if not self.is_sqlite:  # PostgreSQL: the pool checks a connection is alive
            with self._writer.begin() as conn:
                yield conn
            return
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self._writer.connect()
            with self._held_lock:
                self._held.append(conn)
            self._leave_checkpoints(conn)
        raw = conn.connection.driver_connection
        _sqlite_exec(raw, "BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            elif raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        if conn.in_transaction():
            conn.commit()
        else:
            try:
                _sqlite_exec(raw, "COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def _leave_checkpoints(self, conn: Connection) -> None:
        """A write_conn connection leaves WAL checkpoints to a thread of their own
        (:mod:`chute.store.checkpoint`), except as a fallback far past the usual size."""
        path = self.engine.url.database
        if not path or path == ":memory:":
            return
        with self._held_lock:
            if self._checkpointer is None:
                # timeout 0: the checkpointer never waits for the controller's lock
                self._checkpointer = Checkpointer(lambda: sqlite3.connect(
                    path, timeout=0, isolation_level=None, check_same_thread=False))
        conn.connection.driver_connection.execute(
            f"PRAGMA wal_autocheckpoint = {FALLBACK_PAGES}")

    def dispose(self) -> None:
        """Close every connection: those write_conn keeps, then the pool's (and stop
        the checkpoint thread)."""
        with self._held_lock:
            held, self._held = self._held, []
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        for conn in held:
            conn.close()
        self.engine.dispose()


def _tune_sqlite(engine: Engine) -> None:
    """WAL + busy timeout on each connection; BEGIN IMMEDIATE for write sessions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # WAL keeps this crash-safe for commits
        cur.execute("PRAGMA foreign_keys = ON")
        # a page cache that holds a 10k-node run's indexes (allocated as used; the
        # default 2 MB made each insert of a large run read pages again)
        cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # on the sqlite3 connection itself: SQLAlchemy's statement machinery costs more
        # than the BEGIN, and the controller begins a transaction every turn
        raw = conn.connection.driver_connection
        if raw.in_transaction:  # begun by Store.write_conn on the sqlite3 connection
            return
        sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get("chute_write") else "BEGIN"
        _sqlite_exec(raw, sql)


def _sqlite_exec(raw: sqlite3.Connection, sql: str) -> None:
    """Run a transaction statement on a sqlite3 connection; an error is raised as
    SQLAlchemy would have raised it (callers catch SQLAlchemy's exception classes)."""
    try:
        raw.execute(sql)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with chute's connection settings."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # LIFO: the connection used last is reused. A connection's page cache is dropped
        # whenever another connection wrote; a FIFO pool alternated the controller's
        # commits between two connections, each transaction starting with a cold cache
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                               pool_use_lifo=True)
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


_REVISIONS: dict[str, str | None] = {}  # revision -> down_revision, read once per process


def known_revisions() -> dict[str, str | None]:
    """Every revision among the migration scripts, mapped to the one it revises."""
    if not _REVISIONS:
        # read the revision ids from the scripts themselves: importing alembic costs ~1 s,
        # and every CLI call checks the head
        import re

        for f in (MIGRATIONS_DIR / "versions").glob("*.py"):
            text = f.read_text(encoding="utf-8")
            rev = re.search(r"^revision\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
            down = re.search(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)", text, re.MULTILINE)
            if rev:
                _REVISIONS[rev.group(1)] = down.group(1) if down else None
    return _REVISIONS


def head_revision() -> str | None:
    """The newest revision among the migration scripts."""
    revs = known_revisions()
    heads = set(revs) - {d for d in revs.values() if d}
    return heads.pop() if len(heads) == 1 else None


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _migration_lock(engine: Engine, settings: Settings) -> Iterator[None]:
    """Serialise migrations across processes (flock for SQLite, advisory lock for PG)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(421337)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(421337)"))
                conn.commit()
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.home / ".migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine, settings: Settings, revision: str = "head") -> None:
    """Run migrations up to ``revision``; raise StoreError if they fail."""
    from alembic import command

    try:
        current = current_revision(engine)
        if revision == "head" and current == head_revision():
            return  # fast path: every CLI call opens the store
        if current is not None and current not in known_revisions():
            # a newer chute migrated this database: running on it could corrupt it
            raise StoreError(
                f"the database is at schema revision {current!r}, which this version of "
                f"chute does not know (its newest is {head_revision()!r}): upgrade chute, "
                "or point CHUTE_DATABASE_URL at another database")
        with _migration_lock(engine, settings):
            if revision == "head" and current_revision(engine) == head_revision():
                return  # another process migrated while we waited for the lock
            with engine.begin() as conn:
                command.upgrade(_alembic_config(conn), revision)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"database migration failed: {exc}") from exc


def open_store(settings: Settings) -> Store:
    """Open the metadata store of ``settings``, migrated to the latest schema."""
    engine = make_engine(settings.database_url)
    upgrade(engine, settings)
    return Store(engine)
