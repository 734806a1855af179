"""WAL checkpoints of a SQLite store, on a thread of their own.

SQLite in WAL mode appends every commit to the ``-wal`` file and copies the pages back
into the database file in a *checkpoint*, by default run inside the commit that pushed
the WAL past 1,000 pages, on the committing thread. A checkpoint ends with two ``fsync``
calls (WAL, then database: ``synchronous = NORMAL`` syncs only there); on a busy disk
they take milliseconds. The controller commits once per turn and a chain's next step
waits for that commit, so each checkpoint stalled the chain (measured on ext4: ~0.2 ms of
wall time a commit, amortized, over ~0.2 ms of CPU).

The connection the controller commits on (:meth:`Store.write_conn`) therefore leaves
checkpoints to a :class:`Checkpointer`: a daemon thread, kicked every
:data:`KICK_EVERY` commits, runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of
its own (a passive checkpoint never blocks the writer; SQLite releases the GIL while it
copies and syncs). Durability is unchanged: the same pages are synced by the same
checkpoints, only elsewhere. Should the thread fall behind, the committing connection
still checkpoints by itself once the WAL passes :data:`FALLBACK_PAGES`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("chute.store")

# commits (a chain's commit writes ~13 pages: ~3,300 pages a checkpoint, 3x SQLite's own
# default). A checkpoint's cost is mostly its two fsyncs and the pages it copies, which
# repeat from commit to commit (the same rows, the same index pages): a 600-step chain's
# checkpoints took 67-162 ms of wall (18-36 ms CPU) kicked every 64 commits, 30-72 ms
# (9-22 ms) every 256, and the chain beside them 1.75 -> 1.34 ms/step on average
KICK_EVERY = 256
FALLBACK_PAGES = 20_000  # the committing connection's own wal_autocheckpoint meanwhile
IDLE_SECONDS = 30.0  # the thread ends after this long without a kick
MAX_PASSES = 8  # checkpoints in a row, while commits meanwhile left frames to copy
RESTART_FRAMES = 4_000  # WAL pages (16 MB) past which a complete pass is followed by RESTART


class Checkpointer:
    """A thread that checkpoints the WAL when kicked, on a DBAPI connection ``connect()``
    opens for each checkpoint (so an idle checkpointer holds no file open). The thread
    starts on the first kick and ends after :data:`IDLE_SECONDS` without one."""

    def __init__(self, connect: Callable[[], Any]):
        self._connect = connect
        self._kick = threading.Event()
        self._lock = threading.Lock()
        self._stop = False
        self._commits = 0
        self.checkpoints = 0  # run so far (for tests)
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A commit on the connection this thread checkpoints for (counted; every
        :data:`KICK_EVERY`, the thread is woken)."""
        self._commits += 1
        if self._commits >= KICK_EVERY:
            self._commits = 0
            self.kick()

    def kick(self) -> None:
        """Checkpoint now (on the thread; started if it is not running)."""
        with self._lock:
            if self._stop:
                return
            self._kick.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="chute-wal-checkpoint",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._kick.wait(IDLE_SECONDS):
                with self._lock:
                    if not self._kick.is_set():
                        self._thread = None
                        return
            self._kick.clear()
            if self._stop:
                return
            try:
                conn = self._connect()
                try:
                    self._checkpoint(conn)
                finally:
                    conn.close()
                self.checkpoints += 1
            except Exception as exc:  # noqa: BLE001 - the writer's fallback still checkpoints
                log.debug("WAL checkpoint failed: %s", exc)

    @staticmethod
    def _checkpoint(conn: Any) -> None:
        # A passive checkpoint copies the frames there were when it began, and the
        # writer restarts the WAL from its beginning (instead of growing it) only if it
        # begins a transaction once every frame was copied. A commit overlapping every
        # checkpoint (a controller that is never idle for a checkpoint's fsyncs) keeps
        # the WAL growing: past RESTART_FRAMES, a RESTART follows a pass that copied
        # everything. It takes the writer lock (never waiting for it: the connection's
        # busy timeout is 0), copies what was committed since the pass and makes the
        # next transaction start the WAL over; the controller may wait for it meanwhile
        # (a few frames and two fsyncs), which is why it is not done on every kick
        for _ in range(MAX_PASSES):
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or frames <= 0:
                return
            if copied >= frames:
                if frames >= RESTART_FRAMES:
                    conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                return

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._lock:
            self._stop = True
            self._kick.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
