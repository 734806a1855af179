"""The zygote: a fork server that has already imported what a Python step needs.

A compiled SDK step (:mod:`chute.dsl.script`) is a ``python3`` script. Run cold, each
one pays the interpreter start-up and its imports (``import pandas`` alone is ~0.5 s);
a zygote pays them once. It is the fork server of :mod:`chute.executors.forkserver` —
same protocol, same pool of supervisors in their own sessions, same step directories —
started as ``python -m chute.executors.warm_worker MODULE...``, which imports the
modules first (a module that fails to import is skipped: the step's own ``import`` then
fails as it would cold). Its supervisors (:class:`WarmSupervisor`) are therefore forked
with those modules in memory and start a step with a fork instead of ``posix_spawn``
(``os.fork`` less the interpreter's after-fork work, which a supervisor does not need:
:mod:`chute.executors.rawfork`); the forked child (:mod:`chute.executors.warm_step`) sets
up exactly what ``exec`` would have given the step — its private filesystem view
(:meth:`chute.executors.sandbox.Plan.enter`, which works in any forked child) included —
then runs the step's script as ``__main__`` and exits as ``python script`` would. The
supervisor compiles the script before the fork and keeps the code by source (compiling
the step runtime costs more than the rest of a no-op step); it never runs it. chute's
step runtime itself, the same in every SDK step, was run once by the zygote
(:mod:`chute.executors.warm_runtime`): a step runs only its component part. What the child
needs and the supervisor never changes — the signals to reset, how the step's
environment differs from ours, new ``sys.std*`` objects — is made once per supervisor,
not in each child: in a process just forked, every object made or touched costs
copy-on-write page faults, most of a no-op step's cost.

Everything else is the supervisor's: logs, deadline, cancel, killing the step's tree,
collecting outputs, ``status.json``; so the step's semantics are those of a process step.
Each step runs in its own forked child and is gone after it, so nothing a step does
reaches the zygote, its supervisor or a later step.

Known differences from a cold ``python script`` (documented, and tested where they
matter): the hash seed (``PYTHONHASHSEED``) is the zygote's, so all warm steps of a
zygote order sets of strings alike; interpreter options read at start-up from the
step's environment (``PYTHONPATH``, ``PYTHONHASHSEED``, ``-X`` options) are the
zygote's, except ``PYTHONUNBUFFERED`` which is honoured; modules the zygote imported
are not re-executed (their import-time state is shared as of the zygote's start;
``random`` and ``numpy.random`` are reseeded in each step); chute's runtime frames in a
traceback are named ``<chute step runtime>`` wherever it is not the step's own report of
its uncaught exception (a step's own ``sys.excepthook``, ``traceback.print_stack``).

The controller never runs user code: it only parses the step's source with :mod:`ast`
to choose the modules (:func:`preload_modules`).
"""

from __future__ import annotations

import _signal  # signal's own functions turn every signal number into an enum: ~1 ms
import ast
import functools
import gc
import hashlib
import importlib
import json
import os
import signal
import sys
import threading
import types

from chute.executors import (
    forkserver,
    mounts,
    proctree,
    rawfork,
    stepfiles,
    supervisor,
    warm_runtime,
)
from chute.executors.warm_step import ALL_SIGNALS, changed_signals, fresh_stdio, step_main

#: What the step runtime (chute/dsl/runtime.py) imports: every SDK step needs these.
RUNTIME_MODULES = ("importlib.metadata", "json", "os", "re", "subprocess", "sys")
SDK_MARKER = "# chute component: "  # first line of a compiled SDK step's source
CODE_CACHE = 64  # compiled step scripts a supervisor keeps


@functools.lru_cache(maxsize=256)  # the controller sees the same few sources over and over
def preload_modules(source: str) -> tuple[str, ...]:
    """Modules worth importing in a zygote for a step with this source (parsed, never run):
    the runtime's, and every absolute ``import``/``from ... import`` anywhere in it.

    Only the runtime's for a component with ``packages``: it may pip-install another
    version of a module at its start, which a zygote that imported the module already
    would not see.
    """
    names = set(RUNTIME_MODULES)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return tuple(sorted(names))
    if _declares_packages(tree):
        return tuple(sorted(names))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    names.discard("__future__")
    return tuple(sorted(n for n in names if all(p.isidentifier() for p in n.split("."))))


def _declares_packages(tree: ast.Module) -> bool:
    """Whether the step config (the JSON literal passed to ``_chute_main``) lists packages."""
    config = _step_config(tree)
    return config is None or bool(config.get("packages"))


def _step_config(tree: ast.Module) -> dict | None:
    """The step config (the JSON literal passed to ``_chute_main``); {} if there is none,
    None if it is unreadable."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "_chute_main" and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            try:
                config = json.loads(node.args[1].value)
            except ValueError:
                return None
            return config if isinstance(config, dict) else None
    return {}


@functools.lru_cache(maxsize=256)  # parsed once per source, as preload_modules
def declares_packages(source: str) -> bool:
    """Whether a step with this source installs ``packages`` (or its config is unreadable)."""
    try:
        return _declares_packages(ast.parse(source))
    except (SyntaxError, ValueError):
        return False


@functools.lru_cache(maxsize=256)
def wants_reuse(source: str) -> bool:
    """Whether the step asks to run in a reused worker (``"reuse_worker": true`` in its
    config, from ``@component(reuse_worker=True)``); never a step with ``packages``."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    config = _step_config(tree)
    return bool(config and config.get("reuse_worker") is True and not config.get("packages"))


def is_sdk_step(argv: list[str], script_source: str | None) -> bool:
    """Whether a launch is a compiled SDK step: ``python3`` running chute's generated script."""
    return (
        script_source is not None
        and script_source.startswith(SDK_MARKER)
        and list(argv) in (["python3"], ["python"])
    )


# ---------------------------------------------------------------- the supervisor side


class WarmSupervisor(supervisor.Supervisor):
    """A supervisor that forks Python steps from its own (pre-imported) memory.

    ``step.pid`` of a step it forked also names the zygote (``"zygote": pid``): how a
    test or a curious user tells a warm step from a cold one afterwards.
    """

    def __init__(self) -> None:
        super().__init__()
        self.zygote = os.getppid()  # forked by the zygote, before any step
        self.compiled: dict[bytes, tuple[types.CodeType, bool]] = {}
        # what every step's child needs and this process never changes, made once here
        # rather than in each child (where every object made costs copy-on-write faults)
        self._environ = dict(os.environ)  # ours, which is what the child starts with
        self._env_diff: tuple[dict, tuple[list[str], dict[str, str]]] | None = None
        self._stdio: dict[tuple[str, bool], tuple] = {}
        self._signals: list[int] | None = None

    def _prepared(self, env: dict[str, str]) -> tuple:
        """What the child needs to become the step: (signals to reset, variables to unset
        and to set in its environment, its sys.stdin/stdout/stderr)."""
        if self._signals is None:  # our handlers are all set by now (Supervisor.__init__)
            self._signals = changed_signals()
        if self._env_diff is None or self._env_diff[0] != env:
            mine = self._environ
            diff = ([k for k in mine if k not in env],
                    {k: v for k, v in env.items() if mine.get(k) != v})
            self._env_diff = (dict(env), diff)
        unset, assign = self._env_diff[1]
        enc = env.get("PYTHONIOENCODING", "").split(":")[0] or sys.stdout.encoding or "utf-8"
        key = (enc, bool(env.get("PYTHONUNBUFFERED")))
        stdio = self._stdio.get(key)
        if stdio is None:
            if len(self._stdio) >= 4:
                self._stdio.clear()
            stdio = self._stdio[key] = fresh_stdio(*key)
        return self._signals, unset, assign, stdio

    def _code(self, script: str) -> tuple[types.CodeType, bool] | None:
        """The script's compiled code, cached by source: the steps of one component share
        it, and compiling the step runtime costs more than the rest of a no-op step;
        paired with whether it is only the part after chute's runtime
        (:mod:`chute.executors.warm_runtime`). Only compiled here, never run; None if it
        does not compile (the step itself then compiles it and reports the error as
        ``python script`` would)."""
        inline = self.spec.get("script_source")
        if inline is not None and script == f"{self.sd}/script":
            source = inline.encode()  # what _run just wrote there: no need to read it back
        else:
            try:
                with open(script, "rb") as f:
                    source = f.read()
            except OSError:
                return None
        key = hashlib.sha256(source).digest()
        entry = self.compiled.get(key) or INHERITED.get(key)
        if entry is None:
            entry = _compile(source, script)
            if entry is None:
                return None
            if len(self.compiled) >= CODE_CACHE:
                self.compiled.clear()
            self.compiled[key] = entry
        return _relocate(entry[0], script), entry[1]

    def _spawn(self, argv, env, working_dir, plan, out_w, err_w) -> str | None:
        if len(argv) < 2 or argv[0] != sys.executable:
            return super()._spawn(argv, env, working_dir, plan, out_w, err_w)
        cwd = working_dir or plan.default_cwd
        program = self._code(argv[1])
        prepared = self._prepared(env)
        # as the cold path: a bad working directory is an ERROR (the step directory, the
        # default, is there: supervisor.pid was just made in it)
        if not plan.enabled and working_dir:
            try:
                os.makedirs(cwd, exist_ok=True)
            except OSError as e:
                return f"working directory {working_dir}: {e.strerror or e}"
        # no signal may run one of our Python handlers in the child before it resets them
        old = _signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
        try:
            pid = rawfork.fork()  # os.fork less its after-fork work: a quarter of the step
        except OSError as e:
            _signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return f"could not start step: {e}"
        if pid == 0:  # the step: never returns
            code = 127
            try:
                code = step_main(argv, program, prepared, cwd, plan, out_w, err_w,
                                 self.devnull)
            finally:
                os._exit(code)
        _signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.step_pid = pid
        stepfiles.write_small(
            f"{self.sd}/{stepfiles.STEPFILE}",
            {"pid": pid, "create_time": proctree.create_time(pid), "zygote": self.zygote},
        )
        return None


# ---------------------------------------------------------------- compiling a step's script


def _compile(source: bytes, filename: str) -> tuple[types.CodeType, bool] | None:
    """(code, whether it is only the part after the pre-run runtime), or None if the
    script does not compile."""
    template = warm_runtime.TEMPLATE
    code = template.compile(source, filename) if template is not None else None
    if code is not None:
        return code, True
    try:
        return compile(source, filename, "exec", dont_inherit=True), False
    except (SyntaxError, ValueError):
        return None


def _relocate(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` with ``co_filename`` (its own and its nested functions') set to filename."""
    if code.co_filename == filename:
        return code
    consts = tuple(
        _relocate(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


# ---------------------------------------------------------------- the zygote process


# compiled by the zygote, by sha256 of the source: as WarmSupervisor._code's cache
INHERITED: dict[bytes, tuple[types.CodeType, bool]] = {}
# sha256 of the JSON text of every source precompile() has seen (compiled or not): the
# requests it need not parse
_SEEN: set[bytes] = set()
_SOURCE_KEY = b', "script_source": '  # launch.json's last key (chute.executors.local)


def precompile(line: bytes) -> None:
    """In the zygote: compile a step's script the first time it is seen (never run it), so
    that workers forked from now on inherit the code instead of each compiling it (tens of
    ms for the step runtime: more than many no-op steps). ``line`` is the launch request;
    it is parsed only for a source not seen before (parsing it costs ~50 us)."""
    at = line.rfind(_SOURCE_KEY)
    if at < 0:
        return
    mark = hashlib.sha256(memoryview(line)[at:]).digest()
    if mark in _SEEN:
        return
    try:
        request = json.loads(line)
    except ValueError:
        return
    source = ((request.get("spec") or {}).get("script_source") or "").encode()
    if len(_SEEN) >= 4 * CODE_CACHE:
        _SEEN.clear()
    _SEEN.add(mark)
    if not source:
        return
    key = hashlib.sha256(source).digest()
    if key in INHERITED:
        return
    entry = _compile(source, "<chute step>")
    if entry is None:
        return  # the step reports it, as `python script` would
    if len(INHERITED) >= CODE_CACHE:
        INHERITED.clear()
    INHERITED[key] = entry


def preload(modules: list[str]) -> list[str]:
    """Import ``modules`` here (a failure is the step's to meet); the ones imported."""
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
            done.append(name)
        except BaseException:  # noqa: BLE001, S112 - SystemExit too: a module is not our exit
            continue
    return done


def main(modules: list[str]) -> None:
    """Entry point: import ``modules``, say ready, then serve as the fork server does."""
    forkserver.take_notify_fd()
    rawfork.record()  # before any module we do not know registers an at-fork callback
    mounts.available()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # a module printing at import must not write on the protocol pipe
    os.close(null)
    # as for `python script`, the script's directory (set per step) leads sys.path, not
    # the directory the controller runs in: its files are not the step's modules
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    done = preload(modules)
    warm_runtime.load()  # every SDK step's runtime, run once here rather than in each step
    rawfork.seal()  # the imports are done: their at-fork callbacks are all noted
    # a Python thread started by an import may hold a lock at the fork: the controller
    # then runs these steps cold instead (threads of C libraries such as OpenBLAS, which
    # handle fork themselves, are not Python threads and do not count)
    ready = {"ready": True, "modules": done, "python_threads": threading.active_count()}
    out.write(json.dumps(ready).encode() + b"\n")
    out.flush()
    gc.collect()
    gc.freeze()  # forks then do not copy pages because the collector touched them
    # the pool's workers run WarmSupervisors (this process only: it is ours)
    forkserver.SUPERVISOR = WarmSupervisor
    forkserver.AFTER_REQUEST = precompile
    forkserver.serve(sys.stdin.fileno(), out)


if __name__ == "__main__":
    main(sys.argv[1:])
