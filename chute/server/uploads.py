"""Turn an uploaded pipeline file into a workflow spec: Argo YAML/JSON, or a Python file.

YAML goes through the defensive loader and the validator. A Python file is user code, so
it is never imported into the server: it is compiled by ``chute compile`` in a child
process with a time limit, and only the YAML it prints comes back (and is then loaded
and validated like any upload).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chute.errors import Issue, SpecError, UserError

MAX_UPLOAD_BYTES = 4 * 1024 * 1024
COMPILE_TIMEOUT_SECONDS = 60
RUNNABLE_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")


def load_spec_text(data: bytes | str, source: str) -> dict[str, Any]:
    """Load and validate one workflow resource from YAML/JSON text; return it as a dict."""
    from chute.spec.loader import load_documents, to_dict

    resources = load_documents(data, source=source)
    runnable = [r for r in resources if getattr(r, "kind", None) in RUNNABLE_KINDS]
    if len(runnable) != 1:
        raise SpecError(
            Issue("", f"expected exactly one Workflow or WorkflowTemplate, found {len(runnable)}"),
            source=source,
        )
    resource = runnable[0]
    try:
        from chute.spec.validate import check
    except ImportError:  # the semantic validator has not landed in this build
        check = None
    if check is not None:
        check(resource)
    return to_dict(resource)


def compile_python(data: bytes, filename: str) -> str:
    """Compile a Python pipeline file to Argo YAML in a child process; return the YAML."""
    with tempfile.TemporaryDirectory(prefix="chute-upload-") as tmp:
        src = Path(tmp) / (Path(filename).name if filename.endswith(".py") else "pipeline.py")
        src.write_bytes(data)
        out = Path(tmp) / "pipeline.yaml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_TOKEN")}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "chute.cli.app", "compile", str(src), "-o", str(out)],
                capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS, cwd=tmp,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"{filename}: compiling took longer than {COMPILE_TIMEOUT_SECONDS} s"
            ) from None
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {proc.returncode}"
            raise UserError(f"{filename}: the pipeline does not compile: {tail}")
        return out.read_text()


def parse_upload(filename: str, data: bytes) -> tuple[str, str, dict[str, Any]]:
    """(source kind, source text, spec dict) of an uploaded pipeline file."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserError(f"{filename}: larger than {MAX_UPLOAD_BYTES} bytes")
    if not data.strip():
        raise UserError(f"{filename}: the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{filename}: not UTF-8 text") from None
    if "\x00" in text:
        raise UserError(f"{filename}: contains a NUL byte")
    if filename.endswith(".py"):
        return "python", text, load_spec_text(compile_python(data, filename), filename)
    return "yaml", text, load_spec_text(text, filename)
