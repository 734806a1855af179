"""Garbage collection: remove the artifacts of workflows that no longer exist (L-4).

Chute's own keys start with the workflow uid (:mod:`chute.artifacts.keys`), so a run's
artifacts are exactly one top-level prefix. :func:`gc` deletes the prefixes of uids not
in the live set and never anything else: keys named by specs (key-only ``s3: {key}``
artifacts) are the user's and stay. A failed deletion leaves the prefix in place for the
next pass (it is retryable, never half-recorded).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from chute.artifacts.local import STAGING, LocalBackend
from chute.artifacts.repository import ArtifactRepository

log = logging.getLogger(__name__)

UID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def run_prefixes(repository: ArtifactRepository) -> set[str]:
    """The workflow uids that have artifacts in ``repository``."""
    found = set()
    for key, _ in repository.list():
        top = key.split("/", 1)[0]
        if top != STAGING and UID.fullmatch(top):
            found.add(top)
    return found


def gc(repository: ArtifactRepository, live_workflow_uids: Iterable[str],
       stale_after: float = 86400.0) -> tuple[int, int]:
    """Delete the artifacts of every workflow uid not in ``live_workflow_uids``;
    return ``(keys_removed, bytes_freed)``. Writes abandoned more than ``stale_after``
    seconds ago (staging files, incomplete multipart uploads) are cleaned up too."""
    live = {str(u) for u in live_workflow_uids}
    removed = freed = 0
    for uid in sorted(run_prefixes(repository) - live):
        try:
            n, b = repository.delete(uid)
        except Exception as exc:  # noqa: BLE001 - keep going; the next pass retries it
            log.warning("artifact gc: could not delete %s: %s", uid, exc)
            continue
        removed += n
        freed += b
    # Leftovers of killed writers: local staging files, incomplete S3 multipart uploads.
    if isinstance(repository.backend, LocalBackend):
        repository.backend.clean_staging(stale_after)
    elif hasattr(repository.backend, "abort_stale_uploads"):
        try:
            repository.backend.abort_stale_uploads(stale_after)
        except Exception as exc:  # noqa: BLE001 - retried by the next pass
            log.warning("artifact gc: could not abort stale uploads: %s", exc)
    return removed, freed
