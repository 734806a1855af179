"""Starting a step's first process, as the supervisor does for a process (cold) step.

:func:`command` turns a launch spec into the argv to run (an inline ``script`` is written
into the step directory first, as Argo's ``script`` template does). The step then starts
in a new session, with stdin on ``/dev/null``, stdout/stderr on the supervisor's pipes and
every signal the supervisor ignores back to default (as a container's process starts):

* :func:`posix_spawn_step` without a private view: ``posix_spawn`` (vfork + exec inside
  libc: no copy of the supervisor's memory and little Python);
* :func:`popen_private` with one (:mod:`chute.executors.sandbox`): the mount namespace
  and chroot need code in the forked child, so ``Popen(preexec_fn=...)``.

A step that cannot be started raises :class:`SpawnError` whose message is what the step's
result says, worded as a container runtime's (``exec: "x": executable file not found in
$PATH``). Warm Python steps start otherwise (:mod:`chute.executors.warm_worker`).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from chute.executors import sandbox
from chute.executors.stepfiles import write_file


class SpawnError(Exception):
    """The step could not be started; the message is the step's error message."""


def resolve_argv(argv: list[str]) -> list[str]:
    """Map ``python``/``python3`` to the running interpreter (images call it by that name)."""
    if argv and argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return list(argv)


def command(spec: dict, step_dir: str | Path) -> list[str]:
    """The step's argv from its launch spec; an inline script is written to
    ``step_dir/script`` (:func:`place_script`) and its path appended (as Argo's:
    ``command: [sh, -c]`` runs the file itself)."""
    argv = resolve_argv(list(spec["argv"]))
    if spec.get("script_source") is not None:
        script = f"{step_dir}/script"
        place_script(script, spec["script_source"])
        argv.append(script)
    return argv


SCRIPT_MODE = 0o755
_SCRIPTS_KEPT = 16
# script source -> (a script file this process wrote with it, what it was then: identity,
# size, mtime, mode)
_scripts: dict[str, tuple[str, tuple]] = {}


def place_script(path: str | Path, source: str) -> None:
    """Make ``path`` a script file holding ``source``, mode 0755.

    Every step of a template has the same script, so when this process wrote it before
    for an earlier step, and that file is still there unchanged, ``path`` becomes a hard
    link to it: a new inode costs 0.1-0.4 ms of CPU on this machine's ext4 (it checks
    candidate inodes for recent deletion), a link ~10 us. Steps of a template then share
    the file; one that rewrites its own script while another runs would change the
    other's too (a rewritten one is never linked again). Otherwise the file is written.
    """
    seen = _scripts.get(source)
    if seen is not None:
        try:
            if _identity(os.stat(seen[0])) == seen[1]:
                _link(seen[0], path)
                return
        except OSError:
            pass  # gone (its run deleted), another file system, too many links: write
    try:
        os.unlink(path)  # never rewrite a file in place: it may be another step's too
    except FileNotFoundError:
        pass
    write_file(path, source.encode(), SCRIPT_MODE)
    if len(source) <= 1 << 16:  # a few sources of ordinary size only
        if len(_scripts) >= _SCRIPTS_KEPT:
            _scripts.clear()
        _scripts[source] = (str(path), _identity(os.stat(path)))


def _link(src: str, path: str | Path) -> None:
    try:
        os.link(src, path)
    except FileExistsError:  # left by an earlier try in this directory
        os.unlink(path)
        os.link(src, path)


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode


def exec_error(argv0: str, e: OSError) -> str:
    """The message of a failed exec of ``argv0``, worded as a container runtime's."""
    if isinstance(e, FileNotFoundError):
        return f'exec: "{argv0}": executable file not found in $PATH'
    if isinstance(e, PermissionError):
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {e.strerror or e}'


def posix_spawn_step(argv: list[str], env: dict[str, str], cwd: str, working_dir: str | None,
                     stdin: int, out_w: int, err_w: int, ignored: tuple) -> int:
    """Start the step without a private view; its pid. The working directory (``cwd``,
    absolute; made if missing) is set by changing the caller's own: the supervisor uses
    absolute paths only, and posix_spawn has no portable chdir action."""
    try:
        try:
            os.chdir(cwd)
        except FileNotFoundError:
            os.makedirs(cwd, exist_ok=True)
            os.chdir(cwd)
    except OSError as e:
        raise SpawnError(f"working directory {working_dir}: {e.strerror or e}") from None
    path = argv[0]
    if "/" not in path:  # looked up per step: a cached lookup could miss a new command
        path = shutil.which(path, path=env.get("PATH", os.defpath)) or ""
        if not path:
            raise SpawnError(exec_error(argv[0], FileNotFoundError()))
    try:
        return os.posix_spawn(
            path,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=ignored,
        )
    except OSError as e:
        raise SpawnError(exec_error(argv[0], e)) from None


def popen_private(argv: list[str], env: dict[str, str], working_dir: str | None,
                  plan: sandbox.Plan, stdin: int, out_w: int, err_w: int,
                  ignored: tuple) -> subprocess.Popen:
    """Start the step in its private view (``plan`` enabled)."""
    try:
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            env=env,
            start_new_session=True,
            close_fds=True,
            # the supervisor is single-threaded, so preexec_fn is safe here
            preexec_fn=functools.partial(enter_private_view, plan, working_dir,  # noqa: PLW1509
                                         ignored),
        )
    except subprocess.SubprocessError as e:  # the preexec_fn failed
        raise SpawnError(f"could not start step: {e}") from None
    except OSError as e:
        raise SpawnError(exec_error(argv[0], e)) from None


def hold_mount_ns(pid: int) -> int | None:
    """An fd on the step's mount namespace, or None: holding it makes the namespace's
    teardown (slow: RCU grace periods) happen when the supervisor closes it, after the
    result is written, not in the step's exit."""
    try:
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def enter_private_view(plan: sandbox.Plan, working_dir: str | None, ignored=()) -> None:
    """preexec_fn of a sandboxed step: default signals, mount namespace, chroot, then the
    working dir."""
    for s in ignored:
        signal.signal(s, signal.SIG_DFL)
    plan.enter()
    if working_dir:
        os.makedirs(working_dir, exist_ok=True)
    os.chdir(working_dir or plan.default_cwd)
