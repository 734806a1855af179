"""Import a pipeline from ``path/to/file.py[:name]``, as ``chute compile`` and ``chute run`` do.

The file is imported as a module (it is the user's own code, like ``python file.py``), with
its directory first on ``sys.path`` so it can import its neighbours. Without ``:name`` the
file must define exactly one ``@pipeline``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from chute.dsl.pipeline import Pipeline
from chute.errors import NotFoundError, UserError


def split_ref(ref: str) -> tuple[Path, str | None]:
    """``file.py:name`` -> (Path("file.py"), "name"); a drive letter is not a name."""
    path, sep, name = ref.rpartition(":")
    if sep and name and not name.startswith(("\\", "/")) and path:
        return Path(path), name
    return Path(ref), None


def load_module(path: Path):
    """Import the Python file at ``path`` under a private module name."""
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    if path.suffix != ".py":
        raise UserError(f"{path}: a pipeline file must be a .py file")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    mod_name = f"chute_pipeline_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    parent = str(resolved.parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    except UserError:
        sys.modules.pop(mod_name, None)
        raise
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise UserError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(parent)
    return module


def load_pipeline(ref: str) -> Pipeline:
    """The pipeline named by ``file.py[:name]`` (``name`` is the Python variable)."""
    path, name = split_ref(ref)
    module = load_module(path)
    found = {k: v for k, v in vars(module).items() if isinstance(v, Pipeline)}
    if name is not None:
        if name not in vars(module):
            raise NotFoundError(f"{path}: no {name!r} in the file; pipelines: "
                                f"{', '.join(sorted(found)) or 'none'}")
        obj = vars(module)[name]
        if not isinstance(obj, Pipeline):
            raise UserError(f"{path}:{name} is not a @pipeline function")
        return obj
    if len(found) != 1:
        what = ", ".join(sorted(found)) if found else "none"
        raise UserError(f"{path}: defines {len(found)} pipelines ({what}); "
                        f"name one as {path}:NAME")
    return next(iter(found.values()))
