"""Forking a warm step without CPython's after-fork machinery, which a supervisor does not need.

``os.fork`` runs, in the child, the interpreter's re-initialisation of its locks and
thread states (``PyOS_AfterFork_Child``) and every ``after_in_child`` callback modules
registered with ``os.register_at_fork`` (``threading``'s, ``random``'s, ...). In a process
with one thread none of it changes anything but these callbacks' effects: no lock can be
held by a thread that the fork did not copy. Yet running it costs a child of a zygote
~175 copy-on-write page faults and 0.6-1 ms of CPU (``threading._after_fork`` alone
rebuilds its locks and walks its tables; every object it touches is a page copied), and
a no-op warm step ~90 faults and 0.3-0.5 ms, a quarter of its process
(``bench/fork_floor.py``).

:func:`fork` therefore calls libc's ``fork`` directly (glibc still runs the C libraries'
``pthread_atfork`` handlers, as under ``os.fork``) and does itself what the skipped part
would have done for a single-threaded process:

* ``random``'s callback reseeds its generator from ``os.urandom``: the parent reseeds just
  before the fork instead, so the child starts with a fresh state all the same;
* ``threading``'s rebuilds locks no other thread can hold and re-keys the one live thread
  under the same ident: nothing to do (``native_id`` stays the parent's, as under
  ``os.fork``);
* every other callback registered between :func:`record` and :func:`seal` (by the modules
  a zygote preloads) runs as ``os.fork`` runs it: ``before`` in reverse order, then
  ``after_in_parent`` or ``after_in_child`` in order, an exception in one reported and
  ignored.

It is used only where it is equivalent and tested: CPython 3.11 on Linux (whose
after-fork code this reasons about, and the version chute's suite runs on; later versions
re-initialise more per-interpreter state after a fork, so they get ``os.fork``), a
process with exactly one thread, :func:`record` called before anything but chute's own
modules registered a callback, no module imported since :func:`seal`, and
``CHUTE_RAW_FORK`` not ``0``; :func:`fork` is ``os.fork`` otherwise.
"""

from __future__ import annotations

import _random
import ctypes
import functools
import os
import sys

RAW_FORK_ENV = "CHUTE_RAW_FORK"
# the modules whose at-fork callbacks fork() stands in for (the only ones a zygote imports
# before record(); a test keeps it so)
KNOWN = frozenset({"threading", "random"})
# other standard modules that register one: imported before record(), they disable it
REGISTERING = ("logging", "concurrent.futures.thread", "concurrent.futures.process")

_handlers: list[tuple] = []  # (before, after_in_parent, after_in_child), registration order
_real_register = os.register_at_fork  # the interpreter's own
_libc_fork = None  # libc's fork, called holding the GIL; None: use os.fork
_reseed = None  # random's after-fork callback (random._inst.seed), run before the fork
_sealed: int | None = None  # len(sys.modules) at seal(): a module imported since -> os.fork


def record() -> bool:
    """From now on, note the at-fork callbacks modules register, and let :func:`fork` fork
    directly; False (and :func:`fork` is ``os.fork``) where that would not be equivalent.
    Call it once, in a single-threaded process, before importing anything else (and
    :func:`seal` once the imports are done)."""
    global _libc_fork
    if _libc_fork is not None or _sealed is not None:
        return _libc_fork is not None  # recording already, or sealed
    if not _supported() or any(m in sys.modules for m in REGISTERING):
        return False
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held, as in os.fork
        libc_fork = libc.fork
    except (OSError, AttributeError):
        return False
    libc_fork.restype, libc_fork.argtypes = ctypes.c_int, []
    real = _real_register

    def register_at_fork(**callbacks):
        real(**callbacks)  # its checks (keyword-only, callable, at least one) stand
        if not _stand_in(callbacks):
            _handlers.append(
                tuple(callbacks.get(k) for k in ("before", "after_in_parent", "after_in_child"))
            )

    register_at_fork.__doc__ = real.__doc__
    os.register_at_fork = register_at_fork
    random = sys.modules.get("random")
    if random is not None:  # registered already: random._inst.seed
        _stand_in({"after_in_child": random._inst.seed})
    _libc_fork = libc_fork
    return True


def seal() -> None:
    """Stop noting callbacks: ``os.register_at_fork`` is the interpreter's own again, so
    that a forked step's code finds the builtin, and the steps need not put it back (a
    change to ``os``'s namespace would cost each step ~30 page faults: every function
    then re-specialises its ``os.`` lookups). From now on :func:`fork` is ``os.fork`` in
    a process that imported a module since (it could have registered a callback)."""
    global _sealed
    os.register_at_fork = _real_register
    _sealed = len(sys.modules)


def _stand_in(callbacks: dict) -> bool:
    """Whether these are threading's or random's callbacks, which fork() stands in for
    (noting random's, to run before the fork); they are told by their names."""
    global _reseed
    child = callbacks.get("after_in_child")
    if len(callbacks) != 1 or child is None:
        return False
    name = (getattr(child, "__module__", None), getattr(child, "__qualname__", None))
    if name == ("threading", "_after_fork"):
        return True  # nothing to do with one thread
    random = sys.modules.get("random")
    generator = getattr(random, "_inst", None)
    if name == ("random", "Random.seed") and getattr(child, "__self__", None) is generator:
        _reseed = child  # the module's own generator, reseeded from os.urandom
        if type(generator).seed is getattr(getattr(random, "Random", None), "seed", None):
            _reseed = functools.partial(_seed, generator)  # what Random.seed() does, in C
        return True
    return False


def _seed(generator) -> None:
    """``random.Random.seed(generator)``, less its Python frame (~25 page faults a fork)."""
    _random.Random.seed(generator)
    generator.gauss_next = None


def _supported() -> bool:
    return (
        sys.platform == "linux"
        and sys.implementation.name == "cpython"
        and sys.version_info[:2] == (3, 11)
        and os.environ.get(RAW_FORK_ENV, "1") != "0"
    )


_single: int | None = None  # pid of the process last found to have a single thread


def active() -> bool:
    """Whether :func:`fork` would fork directly in this process now.

    The thread count is read once per process (a supervisor is forked with one thread
    and starts none; reading it costs ~30 page faults in a process just forked), and
    before every fork where a module's at-fork callback, which could start one, ran.
    """
    global _single
    if _libc_fork is None or (_sealed is not None and len(sys.modules) != _sealed):
        return False
    if _single != os.getpid() or _handlers:
        _single = os.getpid() if _threads() == 1 else None
    return _single is not None


def _threads() -> int:
    """This process's thread count (C libraries' threads too), from /proc; 0 if unknown."""
    try:  # os.read, not open(): no file objects made (each costs page faults after a fork)
        fd = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return int(data[data.rfind(b")") + 2 :].split()[17])
    except (OSError, ValueError, IndexError):
        return 0


def fork() -> int:
    """``os.fork()``, without the interpreter's after-fork work where :func:`active`."""
    if not active():
        return os.fork()
    sys.audit("os.fork")  # as os.fork raises it, for an audit hook a preloaded module added
    for before, _, _ in reversed(_handlers):
        _call(before)
    if _reseed is not None:
        _reseed()  # the child's fresh random state, made here
    pid = _libc_fork()
    if pid < 0:
        err = ctypes.get_errno()
        for _, after_in_parent, _ in _handlers:
            _call(after_in_parent)
        raise OSError(err, os.strerror(err))
    for _, after_in_parent, after_in_child in _handlers:
        _call(after_in_child if pid == 0 else after_in_parent)
    return pid


def _call(fn) -> None:
    if fn is None:
        return
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - os.fork reports it as unraisable and goes on
        _unraisable(fn, e)


def _unraisable(fn, e: Exception) -> None:
    """Print what the interpreter's default unraisable hook prints for a failed callback."""
    import traceback

    try:
        sys.stderr.write(f"Exception ignored in: {fn!r}\n")
        traceback.print_exception(type(e), e, e.__traceback__.tb_next, file=sys.stderr)
        sys.stderr.flush()
    except Exception:  # noqa: BLE001, S110 - no stderr to report on
        pass
