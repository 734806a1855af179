"""A warm step's own process: the child a zygote's supervisor forks for one step.

It sets up exactly what ``exec`` of ``python script`` would have given the step (a new
session, stdin from /dev/null, stdout/stderr on the log pipes, no other descriptors,
default signal dispositions, the step's environment, its private filesystem view and
working directory), runs the step's script as ``__main__`` (as ``runpy.run_path``
would) and ends as ``python script`` would (exit code of ``SystemExit``; an uncaught
exception prints its traceback to stderr and exits 1; threads joined, ``atexit``,
streams flushed). What the child needs and its supervisor never changes (the signals to
reset, new ``sys.std*`` objects) is made once per supervisor (:func:`changed_signals`,
:func:`fresh_stdio`), not in each child: in a process just forked, every object made or
touched costs copy-on-write page faults, most of a no-op step's cost.

Separate from :mod:`chute.executors.warm_worker` (the zygote and its supervisors, which
fork this child and never run the step themselves) because it is what runs *as the
step*; a reused worker (:mod:`chute.executors.reused_worker`), which runs steps in its
own process, ends them with the same parts (:func:`exit_code`, :func:`report`,
:func:`flush_stdio`, :func:`reseed`).
"""

from __future__ import annotations

import _signal  # signal's own functions turn every signal number into an enum: ~1 ms
import atexit  # here, not first in each step: importing it in a forked child costs ~0.4 ms
import builtins
import gc
import io
import os
import signal
import sys
import threading
import types

from chute.executors import warm_runtime

MAXFD = 1 << 16
ALL_SIGNALS = frozenset(int(s) for s in signal.valid_signals())
# the interpreter's own sys.std* objects, referenced here too so that a step replacing
# them (with what its supervisor made) does not free them: freeing them there would flush
# and close three objects, touching memory the step would then copy
_STARTUP_STDIO = (sys.stdin, sys.stdout, sys.stderr)


def changed_signals() -> list[int]:
    """Signals whose disposition is not the default here. Every one the zygote or the
    supervisor changed went through Python, so its table lists them; one sigaction each
    for all the others would cost ~0.5 ms a step."""
    return [s for s in ALL_SIGNALS if s not in (signal.SIGKILL, signal.SIGSTOP)
            and _signal.getsignal(s) != _signal.SIG_DFL]


def fresh_stdio(enc: str, unbuffered: bool) -> tuple:
    """New sys.stdin/stdout/stderr on fds 0-2 as a fresh interpreter's for a step (stdin
    /dev/null; stdout a pipe, block-buffered unless PYTHONUNBUFFERED; stderr a pipe,
    line-buffered). Made in the supervisor, which never uses them, so that each forked
    child finds them new; stdout and stderr are opened while fds 1 and 2 are a pipe, as
    they are in the step, so that what the objects learn at creation (not seekable) holds.
    """
    r, w = os.pipe()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(w, 1)
        os.dup2(w, 2)
        stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding=enc)
        stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding=enc, errors="strict", write_through=unbuffered)
        stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  encoding=enc, errors="backslashreplace",
                                  line_buffering=True, write_through=True)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, r, w):
            os.close(fd)
    return stdin, stdout, stderr


def step_main(argv, program, prepared, cwd, plan, out_w, err_w, devnull) -> int:
    """In the forked child: become what ``exec`` of ``python script`` would be, run it.
    ``prepared`` is what :meth:`~chute.executors.warm_worker.WarmSupervisor._prepared` made for it."""
    changed, unset, assign, stdio = prepared
    os.setsid()
    signal.set_wakeup_fd(-1)
    for s in changed:  # as a fresh interpreter: defaults, then Python's own
        try:
            _signal.signal(s, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    # _signal's own: signal.signal() turns the old handler into an enum (raising inside)
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    if hasattr(_signal, "SIGXFSZ"):
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
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
    for k in unset:  # the step's environment: only what differs from ours
        del os.environ[k]
    for k, v in assign.items():
        os.environ[k] = v
    script = argv[1]
    sys.argv = list(argv[1:])
    sys.path.insert(0, os.path.dirname(script))
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__ = stdio
    reseed()
    gc.freeze()  # the collector then never walks (and so copies) the inherited objects
    code, in_template = program or (None, False)
    try:
        run_main(script, code, in_template)
        code = 0
    except SystemExit as e:
        code = exit_code(e)
    except BaseException as e:  # noqa: BLE001 - as the interpreter: traceback, exit 1
        tb = user_frames(e.__traceback__, script)
        report(e.with_traceback(tb), script, in_template)
        code = 1
    return finish(code)


def report(e: BaseException, script: str, in_template: bool) -> None:
    """Print the uncaught exception as the interpreter would (sys.excepthook), the
    pre-run runtime's frames named after the script, as in a cold run."""
    if not in_template or sys.excepthook is not sys.__excepthook__:
        sys.excepthook(type(e), e, e.__traceback__)
        return
    import traceback

    te = traceback.TracebackException(type(e), e, e.__traceback__, lookup_lines=False)
    warm_runtime.rename_frames(te, script)
    sys.stderr.write("".join(te.format()))


def run_main(script: str, code: types.CodeType | None, in_template: bool) -> None:
    """Run the script as ``__main__``, as runpy.run_path does for a file (``code`` the part
    after the runtime if ``in_template``: it runs in the module the zygote ran it in)."""
    if code is None:
        with open(script, "rb") as f:
            code = compile(f.read(), script, "exec", dont_inherit=True)
    template = warm_runtime.TEMPLATE
    main = template.module if in_template and template else types.ModuleType("__main__")
    main.__dict__.update(
        __file__=script,
        __cached__=None,
        __loader__=None,
        __package__=None,
        __spec__=None,
        # the module, as a __main__'s (warm_worker's own global was, run as __main__)
        __builtins__=builtins,
    )
    sys.modules["__main__"] = main
    # the step's own program, in the step's own process: what `python script` does
    exec(code, main.__dict__)  # noqa: S102


def reseed() -> None:
    """Fresh random state per step for numpy (``random`` is reseeded at the fork, by its
    own at-fork callback or by :mod:`chute.executors.rawfork`; numpy has none)."""
    nprandom = sys.modules.get("numpy.random")
    if nprandom is not None:
        try:
            nprandom.seed()
        except Exception:  # noqa: BLE001, S110 - a broken numpy is the step's business
            pass


def user_frames(tb, script: str):
    """The traceback from the script's first frame on (the executor's frames left out)."""
    t = tb
    while t is not None and t.tb_frame.f_code.co_filename != script:
        t = t.tb_next
    return t if t is not None else tb


def exit_code(e: SystemExit) -> int:
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


def finish(code: int) -> int:
    """Interpreter shutdown, in its order: wait for threads, atexit, flush."""
    try:
        threading._shutdown()  # non-daemon threads are joined, as at interpreter exit
    except Exception:  # noqa: BLE001, S110
        pass
    atexit._run_exitfuncs()
    return flush_stdio(code)


def flush_stdio(code: int) -> int:
    """Flush ``sys.stdout`` and ``sys.stderr`` as the interpreter does at exit: ``code``,
    or 120 for an otherwise clean exit whose output could not be flushed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - e.g. the reader went away or the step closed it
            code = code or 120
    return code
