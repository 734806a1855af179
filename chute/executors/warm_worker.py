"""The zygote: a fork server that has already imported what a Python step needs.

A compiled SDK step (:mod:`chute.dsl.script`) is a ``python3`` script. Run cold, each
one pays the interpreter start-up and its imports (``import pandas`` alone is ~0.5 s);
a zygote pays them once. It is the fork server of :mod:`chute.executors.forkserver` —
same protocol, same pool of supervisors in their own sessions, same step directories —
started as ``python -m chute.executors.warm_worker MODULE...``, which imports the
modules first (a module that fails to import is skipped: the step's own ``import`` then
fails as it would cold). Its supervisors (:class:`WarmSupervisor`) are therefore forked
with those modules in memory and start a step with ``os.fork`` instead of
``posix_spawn``; the forked child sets up exactly what ``exec`` would have given the
step — a new session, stdin from /dev/null, stdout/stderr on the log pipes, no other
descriptors, default signal dispositions, the step's environment, its private
filesystem view (:meth:`chute.executors.sandbox.Plan.enter`, which works in any forked
child) and working directory — then runs the step's script as ``__main__`` (as
``runpy.run_path`` would) and exits as ``python script`` would (exit code of
``SystemExit``; an uncaught exception prints its traceback to stderr and exits 1). The
supervisor compiles the script before the fork and keeps the code by source (compiling
the step runtime costs more than the rest of a no-op step); it never runs it.

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
``random`` and ``numpy.random`` are reseeded in each step).

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
import io
import json
import os
import signal
import sys
import types

from chute.executors import forkserver, proctree, sandbox, supervisor

#: What the step runtime (chute/dsl/runtime.py) imports: every SDK step needs these.
RUNTIME_MODULES = ("importlib.metadata", "json", "os", "re", "subprocess", "sys")
SDK_MARKER = "# chute component: "  # first line of a compiled SDK step's source
MAXFD = 1 << 16
ALL_SIGNALS = frozenset(int(s) for s in signal.valid_signals())
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
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "_chute_main" and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            try:
                return bool(json.loads(node.args[1].value).get("packages"))
            except (ValueError, AttributeError):
                return True  # unreadable: assume the worst
    return False


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
        self.compiled: dict[bytes, types.CodeType] = {}

    def _code(self, script: str) -> types.CodeType | None:
        """The script's compiled code, cached by source: the steps of one component share
        it, and compiling the step runtime costs more than the rest of a no-op step.
        Only compiled here, never run; None if it does not compile (the step itself then
        compiles it and reports the error as ``python script`` would)."""
        inline = self.spec.get("script_source")
        if inline is not None and script == str(self.step_dir / "script"):
            source = inline.encode()  # what _run just wrote there: no need to read it back
        else:
            try:
                with open(script, "rb") as f:
                    source = f.read()
            except OSError:
                return None
        key = hashlib.sha256(source).digest()
        code = self.compiled.get(key) or INHERITED.get(key)
        if code is None:
            try:
                code = compile(source, script, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                return None
            if len(self.compiled) >= CODE_CACHE:
                self.compiled.clear()
            self.compiled[key] = code
        return _relocate(code, script)

    def _spawn(self, argv, env, working_dir, plan, out_w, err_w) -> str | None:
        if len(argv) < 2 or argv[0] != sys.executable:
            return super()._spawn(argv, env, working_dir, plan, out_w, err_w)
        cwd = working_dir or plan.default_cwd
        program = self._code(argv[1])
        if not plan.enabled:  # as the cold path: a bad working directory is an ERROR
            try:
                os.makedirs(cwd, exist_ok=True)
            except OSError as e:
                return f"working directory {working_dir}: {e.strerror or e}"
        # no signal may run one of our Python handlers in the child before it resets them
        old = _signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
        try:
            pid = os.fork()
        except OSError as e:
            _signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return f"could not start step: {e}"
        if pid == 0:  # the step: never returns
            code = 127
            try:
                code = _step_main(argv, program, env, cwd, plan, out_w, err_w, self.devnull)
            finally:
                os._exit(code)
        _signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self.step_pid = pid
        supervisor._write_small(
            self.step_dir / supervisor.STEPFILE,
            {"pid": pid, "create_time": proctree.create_time(pid), "zygote": self.zygote},
        )
        return None


# ---------------------------------------------------------------- the step side


def _step_main(argv, program, env, cwd, plan, out_w, err_w, devnull) -> int:
    """In the forked child: become what ``exec`` of ``python script`` would be, run it."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for s in ALL_SIGNALS:  # as a fresh interpreter: defaults, then Python's own
        # every disposition the zygote or supervisor changed went through Python, so its
        # table lists them; one sigaction each for the others would cost ~0.5 ms a step
        if s not in (signal.SIGKILL, signal.SIGSTOP) and _signal.getsignal(s) != _signal.SIG_DFL:
            try:
                _signal.signal(s, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, MAXFD)  # the supervisor's pipes, log and request pipe are not the step's
    try:
        plan.enter()
        if plan.enabled:
            os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
    except OSError as e:
        os.write(2, f"chute: could not start step: {e}\n".encode())
        return 127
    _signal.pthread_sigmask(signal.SIG_SETMASK, ())
    _set_environ(env)
    script = argv[1]
    sys.argv = list(argv[1:])
    sys.path.insert(0, os.path.dirname(script))
    _fresh_stdio(env)
    _reseed()
    gc.freeze()  # the collector then never walks (and so copies) the inherited objects
    try:
        _run_main(script, program)
        code = 0
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException as e:  # noqa: BLE001 - as the interpreter: traceback, exit 1
        tb = _user_frames(e.__traceback__, script)
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        code = 1
    return _finish(code)


def _run_main(script: str, code: types.CodeType | None) -> None:
    """Run the script as ``__main__``, as runpy.run_path does for a file."""
    if code is None:
        with open(script, "rb") as f:
            code = compile(f.read(), script, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=script,
        __cached__=None,
        __loader__=None,
        __package__=None,
        __spec__=None,
        __builtins__=__builtins__,
    )
    sys.modules["__main__"] = main
    # the step's own program, in the step's own process: what `python script` does
    exec(code, main.__dict__)  # noqa: S102


def _relocate(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` with ``co_filename`` (its own and its nested functions') set to filename."""
    if code.co_filename == filename:
        return code
    consts = tuple(
        _relocate(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _set_environ(env: dict[str, str]) -> None:
    """Make os.environ (and the C environment) ``env``, touching only what differs: the
    step's environment is mostly the one the zygote has, and each putenv costs."""
    for k in [k for k in os.environ if k not in env]:
        del os.environ[k]
    for k, v in env.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


def _fresh_stdio(env: dict[str, str]) -> None:
    """New sys.std* on fds 0-2, buffered as a fresh interpreter's (stdout to a pipe:
    block-buffered unless PYTHONUNBUFFERED; stderr: line-buffered)."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    enc = env.get("PYTHONIOENCODING", "").split(":")[0] or sys.stdout.encoding or "utf-8"
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=enc
    )
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding=enc,
        errors="strict",
        write_through=unbuffered,
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding=enc,
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )


def _reseed() -> None:
    """Fresh random state per step (``random`` reseeds itself at fork; numpy does not)."""
    nprandom = sys.modules.get("numpy.random")
    if nprandom is not None:
        try:
            nprandom.seed()
        except Exception:  # noqa: BLE001, S110 - a broken numpy is the step's business
            pass


def _user_frames(tb, script: str):
    """The traceback from the script's first frame on (the executor's frames left out)."""
    t = tb
    while t is not None and t.tb_frame.f_code.co_filename != script:
        t = t.tb_next
    return t if t is not None else tb


def _exit_code(e: SystemExit) -> int:
    """What the interpreter makes of ``SystemExit(code)``."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        print(e.code, file=sys.stderr)
    except Exception:  # noqa: BLE001, S110
        pass
    return 1


def _finish(code: int) -> int:
    """Interpreter shutdown, in its order: wait for threads, atexit, flush."""
    import atexit
    import threading

    try:
        threading._shutdown()  # non-daemon threads are joined, as at interpreter exit
    except Exception:  # noqa: BLE001, S110
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - e.g. the reader went away; as Python: 120
            code = code or 120
    return code


# ---------------------------------------------------------------- the zygote process


INHERITED: dict[bytes, types.CodeType] = {}  # compiled by the zygote, by sha256 of the source


def precompile(request: dict) -> None:
    """In the zygote: compile a step's script the first time it is seen (never run it), so
    that workers forked from now on inherit the code instead of each compiling it (tens of
    ms for the step runtime: more than many no-op steps)."""
    source = ((request.get("spec") or {}).get("script_source") or "").encode()
    if not source:
        return
    key = hashlib.sha256(source).digest()
    if key in INHERITED:
        return
    try:
        code = compile(source, "<chute step>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return  # the step reports it, as `python script` would
    if len(INHERITED) >= CODE_CACHE:
        INHERITED.clear()
    INHERITED[key] = code


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
    sandbox.available()
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
    import threading

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
