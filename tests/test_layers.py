"""The package layers import downward only (STYLE.md), held by import-linter's contract in
pyproject.toml: cli, server -> engine, dsl, ml -> executors, store, artifacts -> spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_layers_import_downward_only():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout
