"""``chute compile pipeline.py[:name] -o out.yaml``: a Python pipeline as Argo YAML.

Writes a ``Workflow`` (``--template`` for a ``WorkflowTemplate``) to ``-o`` or standard
output. The file is written only when compilation succeeds, atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from chute.dsl.compiler import compile_to_yaml
from chute.dsl.loader import load_pipeline


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def register(app: typer.Typer) -> None:
    """Add ``chute compile`` to the app."""

    @app.command("compile")
    def compile_cmd(
        pipeline: Annotated[str, typer.Argument(
            help="The pipeline: path/to/file.py, or file.py:NAME when it defines several.",
            show_default=False)],
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="Write the YAML here (default: standard output).")] = None,
        template: Annotated[bool, typer.Option(
            "--template", help="Emit a WorkflowTemplate instead of a Workflow.")] = False,
    ) -> None:
        """Compile a Python pipeline to Argo Workflow YAML."""
        pipe = load_pipeline(pipeline)
        text = compile_to_yaml(pipe, kind="WorkflowTemplate" if template else "Workflow")
        if output is None:
            typer.echo(text, nl=False)
        else:
            write_atomic(output, text)
            typer.echo(f"wrote {output}", err=True)
