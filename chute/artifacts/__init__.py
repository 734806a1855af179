"""chute.artifacts: the artifact repository (local directory or S3) and what moves through it.

How the engine uses it (a handful of calls; every function returns plain dataclasses that
the metadata store keeps)::

    from chute.artifacts import ArtifactRepository, place_inputs, save_outputs, gc

    repo = ArtifactRepository.from_settings()          # once: $CHUTE_HOME config or local dir

    # before a step: inputs.artifacts -> host paths (records of `from` outputs by name)
    placed = place_inputs(repo, template.inputs.artifacts, dest_for={"data": host_path},
                          records={"data": upstream_record}, secrets=SecretStore())
    # -> {name: InputRecord(digest, ...) | None when optional and missing}

    # after a step: outputs.artifacts + StepResult.outputs (step path -> host path)
    records = save_outputs(repo, template.outputs.artifacts, result.outputs,
                           workflow_uid=uid, node_id=node_id)
    # -> {name: ArtifactRecord(key, size, digest, ...) | None when optional and missing}

    gc(repo, live_workflow_uids)                      # -> (keys_removed, bytes_freed)

Modules: :mod:`~chute.artifacts.repository` (ArtifactRepository, ArtifactRecord, save and
load), :mod:`~chute.artifacts.inputs` (sources: from, s3, http, raw, git; batch calls),
:mod:`~chute.artifacts.local` and :mod:`~chute.artifacts.s3` (backends, atomic writes),
:mod:`~chute.artifacts.archive` (tar/zip packing and safe unpacking),
:mod:`~chute.artifacts.keys` (key layout and :func:`safe_key`, also for the server's
download route), :mod:`~chute.artifacts.digest`, :mod:`~chute.artifacts.egress` (SSRF
rules), :mod:`~chute.artifacts.preview`, :mod:`~chute.artifacts.gc`.

Guarantees: writes are atomic (a reader sees no object or the whole one, L-3); keys
start with the workflow uid so GC of one run never touches another (L-4); unpacking
never writes outside its root (V-3); keys are validated before use (§3.3 item 6);
credentials come from the secret store or the environment and never appear in errors.
"""

from chute.artifacts.gc import gc
from chute.artifacts.inputs import InputRecord, place_input, place_inputs, save_outputs
from chute.artifacts.keys import artifact_key, resolve_under, safe_key
from chute.artifacts.preview import Preview, preview
from chute.artifacts.repository import ArtifactRecord, ArtifactRepository, archive_format

__all__ = [
    "ArtifactRecord",
    "ArtifactRepository",
    "InputRecord",
    "Preview",
    "archive_format",
    "artifact_key",
    "gc",
    "place_input",
    "place_inputs",
    "preview",
    "resolve_under",
    "safe_key",
    "save_outputs",
]
