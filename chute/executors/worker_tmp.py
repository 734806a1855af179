"""A reused worker's private ``/tmp``: mounted once, emptied into each step's directory.

A process step with private paths gets its own ``/tmp`` (``step_dir/root/tmp``, by a
mount namespace made for it: :mod:`chute.executors.sandbox`). A reused worker
(:mod:`chute.executors.reused_worker`) gives its steps the same without a mount per step
(a mount and an unmount take the kernel's global mount lock, and an unmount waits for an
RCU grace period: ~50 us on a quiet machine, 0.5 ms and more while other processes make
mount namespaces): at its first step it binds a *scratch*
directory of its own over ``/tmp``, once, and for each step

* places the step's input files in it (:meth:`PrivateTmp.place`);
* runs the step, which sees the scratch as ``/tmp``;
* moves everything the step left there to ``step_dir/root/tmp`` (:meth:`PrivateTmp.empty`):
  the outputs land exactly where a process step's do (``Plan.host_path``), the rest of
  its ``/tmp`` with them as for a process step, and the next step finds ``/tmp`` empty.
  A move is a ``rename`` of each top-level entry; both ends are reached through the
  host's mount tree (never through the ``/tmp`` mount: a rename across two mounts fails
  with ``EXDEV`` even on one file system), and where it still fails (another file
  system) the entry is copied, then removed.

The scratch lives beside the step directories, on their file system, so that the moves
are renames: ``<grandparent of step_dir>/.chute-workers/<pid>-<random>/tmp`` (for the
engine ``$CHUTE_HOME/steps/.chute-workers/...``; the parent if the grandparent is ``/`` or
not writable). It is made again (and ``/tmp`` bound again) if it was deleted, or if a step
directory is on another file system. The pool removes ``<pid>-<random>`` when its worker
is gone (the worker reports it in a reply: ``"tmp"``), and a new scratch sweeps those of
dead workers (a controller killed with its workers).

Beside the scratch, in ``<pid>-<random>/next``, the worker makes the *next* step's
directory ahead of time, between steps (:meth:`PrivateTmp.make_ahead`), and a step's
directory is that one renamed into place (:meth:`PrivateTmp.make_step_dir`): on ext4 a
``mkdir`` costs tens of us of CPU (0.1-0.6 ms where, without a journal, the inode
allocator skips every inode freed in the last minutes: bench/RESULTS.md), a rename ~10 us,
and the step waits only for the rename. A mkdir is the fallback (the first step,
a step directory on another file system, or one there already). If the last step left
something in its ``/tmp`` (outputs, usually: the next step likely will too), the one made
ahead has ``root/tmp`` in it as well, where the next step's leftovers go; a step that then
leaves nothing has an empty ``root/tmp``, as a process step with a private ``/tmp``.

The host's own ``/tmp`` stays reachable: an ``O_PATH`` fd of it, opened before anything is
mounted over it, and its ``/proc/self/fd/N`` link (:meth:`PrivateTmp.host`), through which
the worker does its own file work under the host's ``/tmp`` (step directories, logs,
inputs, secrets scrubbing: tests put them in temporary directories). A host path under
``/tmp`` that the *step* is handed (its step directory, a path in its argv, script or
environment: ``sandbox``'s re-shared paths) is bound into the scratch at its own path:
the directory holding the step directories once for all the steps there
(:meth:`PrivateTmp.keep`: a run's steps, when a chute home is under ``/tmp``), a path
the controller's environment names once, held across steps
(:mod:`chute.executors.steady_binds`), any other for that step only
(:meth:`PrivateTmp.expose`, unmounted after it); rare outside tests.
A step is looked at for such paths by a look (``faccessat``, no symlink followed) at each
``/tmp`` entry its texts name (:meth:`PrivateTmp.handed`); only if one exists does
``sandbox`` say which. The next run's steps (a new directory beside the kept one) get the
old mount point renamed (:meth:`PrivateTmp.keep`); a chain elsewhere is moved out of the
scratch at once and removed after the reply (:meth:`PrivateTmp.tidy`: an ``rmdir`` of a
former mount point can take milliseconds).

What a step left is found without listing the directories where nothing was made
(:class:`chute.executors.dirwatch.DirWatch` watches the scratch and the kept chain's
directories): after a step that made nothing, emptying ``/tmp`` is one ``read``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from chute.executors import mounts
from chute.executors.dirwatch import DirWatch
from chute.executors.kept_dirs import KeptStepDirs, missing, remove_mount_point
from chute.executors.steady_binds import SteadyBinds
from chute.executors.tmp_paths import PLAIN, named_in

WORKERS_DIR = ".chute-workers"


class PrivateTmp(KeptStepDirs, SteadyBinds):
    """This worker's ``/tmp`` (see the module docstring). Made in the worker's own mount
    namespace before anything is mounted over ``/tmp``."""

    def __init__(self) -> None:
        super().__init__()
        self.host_fd = os.open("/tmp", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.host_tmp = f"/proc/self/fd/{self.host_fd}"  # the host's /tmp, below our mount
        self.path: str | None = None  # the worker's directory's host path (the pool's)
        self.own = ""  # the same, as this process reaches it
        self.scratch = ""  # own/tmp: what /tmp shows
        self.ahead = False  # own/next, the next step's directory, is made
        self.ahead_rooted = False  # ... with root/tmp in it
        self.rooted = False  # this step's directory came with root/tmp
        self.left = False  # the last step left something in /tmp
        self.fd: int | None = None  # the scratch (to notice that it was deleted)
        self.dev = -1  # its file system
        self.mounts: list[str] = []  # this step's exposed paths, bound into the scratch
        self.skeleton: list[str] = []  # mount points made for them
        self.levels: list[int] = []  # fds of the scratch and the kept chain's directories
        # but the mount point: listed after each step (an fd costs less than a path's walk)
        self.failed = False  # an unmount failed: the worker's view is not as it should be
        # entries made in the scratch and the chain's directories (one inotify instance
        # for the worker's life: closing one waits for the kernel's SRCU grace period,
        # ~13 ms, where removing a watch does not)
        self.watch: DirWatch | None = None
        self.wds: list[int] = []  # the watch of each of ``levels`` (-1: none)

    def host(self, path: str) -> str:
        """How this process reaches the host's ``path``: under ``/tmp``, through the fd."""
        if path.startswith("/tmp/"):
            return self.host_tmp + path[4:]
        return self.host_tmp if path == "/tmp" else path

    # -- the scratch directory

    def ensure(self, step_dir: str, near: bool = False) -> str | None:
        """Have ``/tmp`` show a scratch directory on ``step_dir``'s file system (which
        exists; ``near``: made by :meth:`make_step_dir` from the one made ahead, so on
        that file system already); the new worker directory's host path if one was made,
        else None. Raises OSError if none can be made (nothing is then mounted over
        ``/tmp``)."""
        if self.fd is not None and os.fstat(self.fd).st_nlink and \
                (near or os.stat(self.host(step_dir)).st_dev == self.dev):
            return None  # (one or two syscalls a step)
        self.close()
        parent = os.path.dirname(step_dir)
        bases = [b for b in (os.path.dirname(parent), parent) if b != "/"] or [parent]
        error: OSError | None = None
        for base in bases:
            try:
                self._make(base)
                break
            except OSError as e:
                error = e
        else:
            assert error is not None
            raise error
        try:
            mounts.bind(self.scratch, "/tmp")
        except OSError:
            self.close()
            raise
        return self.path

    def _make(self, base: str) -> None:
        top = f"{base}/{WORKERS_DIR}"
        try:
            os.mkdir(self.host(top), 0o700)  # the scratch is 1777, as /tmp: not this
        except FileExistsError:
            pass
        _sweep(self.host(top))
        made = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.host(top))
        try:
            os.mkdir(made + "/tmp")
            os.chmod(made + "/tmp", 0o1777)
            fd = os.open(made + "/tmp", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            shutil.rmtree(made, ignore_errors=True)
            raise
        self.path = f"{top}/{os.path.basename(made)}"
        self.own = made
        self.scratch = made + "/tmp"
        self.fd = fd
        self.dev = os.fstat(self.fd).st_dev
        self.levels = [self.fd]
        if self.watch is None:
            self.watch = DirWatch()
        self.wds = [self.watch.add(self.scratch)]

    def close(self) -> None:
        """Unmount and remove the scratch (if any): ``/tmp`` is the host's again."""
        if self.fd is None:
            return
        self.unkeep()
        self.let_go_all()
        try:
            mounts.unmount("/tmp")
        except OSError:
            pass  # EINVAL: not mounted (ensure() failed half-way)
        os.close(self.fd)
        if self.watch is not None:
            self.watch.remove(self.wds[:1])
        shutil.rmtree(self.own, ignore_errors=True)  # through the host's tree: no mount
        self.fd, self.path, self.own, self.scratch = None, None, "", ""  # inside is crossed
        self.levels, self.wds, self.stale = [], [], []
        self.ahead = False

    # -- step directories

    def make_step_dir(self, path: str) -> bool:
        """Make a step's directory (``path``: as this process reaches it): the one made
        ahead, renamed there, else a new one; True if it is the one made ahead (then on
        the scratch's file system). A directory there already (an attempt lost with its
        controller) is used, without its ``root`` (the attempt's files: start afresh)."""
        self.rooted = False
        if self.ahead:
            self.ahead = False
            ahead = self.own + "/next"
            try:  # (an empty directory there is replaced: the same thing)
                try:
                    os.rename(ahead, path)
                except FileNotFoundError:  # a run's first step: its parent is not made
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    os.rename(ahead, path)
                self.rooted, self.ahead_rooted = self.ahead_rooted, False
                return True
            except OSError:  # not empty, another file system: as without
                self.ahead = os.path.isdir(ahead)
        try:
            os.mkdir(path)
        except FileExistsError:
            if os.path.lexists(path + "/root"):
                shutil.rmtree(path + "/root", ignore_errors=True)
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
        return False

    def make_ahead(self) -> None:
        """Between steps: make the next step's directory (off the next step's path; its
        mode is a step directory's, from this process's umask)."""
        if self.fd is None:
            return
        ahead = self.own + "/next"
        try:
            if not self.ahead:
                try:
                    os.mkdir(ahead)
                except FileExistsError:  # (left by a failed rename: as it is)
                    self.ahead_rooted = os.path.isdir(ahead + "/root/tmp")
                self.ahead = True
            if self.left and not self.ahead_rooted:
                os.mkdir(ahead + "/root")
                os.mkdir(ahead + "/root/tmp")
                self.ahead_rooted = True
        except OSError:
            pass  # (the step then makes what is missing)

    # -- one step

    def handed(self, texts, named: frozenset[str] = frozenset()) -> bool:
        """Whether the step may be handed a host path under ``/tmp`` not already in view
        (:meth:`keep`): a path in ``texts`` (its step and working directories, script,
        env values) or in ``named`` (:func:`tmp_paths` of the worker's environment) lies
        below an entry of the host's ``/tmp`` that exists. Only then is
        ``sandbox.plan_for`` asked which (most steps are not: the SDK's own
        ``/tmp/outputs`` is no host path); a look (no symlink followed) at each such entry."""
        paths = set(named)
        kept = self.kept
        inside = "\0" if kept is None else kept + "/"
        for text in texts:
            # a short text without "/tmp" names no path there, even normalised (a step
            # directory: new each step, not worth caching); a long one (a script) is
            # looked at once (cached: its hash is, a search through it is not)
            if len(text) > 256 or "/tmp" in text:
                if text.startswith(inside) and PLAIN.fullmatch(text, len(inside)):
                    continue  # one path, in view already (the step directory, in a run's)
                paths.update(named_in(text))
        tops = {p.split("/", 3)[2] for p in paths
                if (kept is None or not (p == kept or p.startswith(kept + "/")))
                and not self.holds(p)}  # (in view: the kept and the held binds)
        fd = self.host_fd
        # an lstat without raising (no walk through /proc): most tops are not there
        return any(os.access(top, os.F_OK, dir_fd=fd, follow_symlinks=False) for top in tops)

    def place(self, inputs: dict[str, str]) -> None:
        """Copy each input (step path under ``/tmp`` -> host file or directory) into the
        scratch, as ``Plan.prepare`` places them (a copy: a step may change its inputs)."""
        for dest, src in inputs.items():
            if not dest.startswith("/tmp/"):  # the pool sends no other (eligible())
                raise OSError(f"input outside /tmp: {dest}")
            target = self.scratch + os.path.normpath(dest)[4:]
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = self.host(src)
            if os.path.isdir(src):
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)  # with its mode: a tool stays executable

    def expose(self, paths: list[str]) -> None:
        """Bind each host path under ``/tmp`` at its own path in the step's ``/tmp``
        (outermost first, as ``sandbox`` lists them)."""
        kept = self.kept
        for src in paths:
            if kept is not None and (src == kept or src.startswith(kept + "/")) or \
                    self.holds(src):
                continue  # in view already
            mp = self.scratch + src[4:]
            directory = mp if os.path.isdir(self.host(src)) else os.path.dirname(mp)
            self.skeleton += missing(directory)
            os.makedirs(directory, exist_ok=True)
            if not os.path.lexists(mp):
                os.close(os.open(mp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
                self.skeleton.append(mp)
            mounts.bind(self.host(src), src)  # the target through the view: the scratch
            self.mounts.append(src)

    def unexpose(self) -> bool:
        """Undo :meth:`expose` (mount points the step wrote into are kept); False if an
        unmount failed."""
        ok = not self.failed
        for target in reversed(self.mounts):
            try:
                mounts.unmount(target)
            except OSError:
                ok = False
        self.mounts.clear()
        for path in reversed(self.skeleton):
            remove_mount_point(path)  # (not empty: the step wrote there, kept)
        self.skeleton.clear()
        return ok

    def empty(self, root: str | None) -> None:
        """Move what the step left in ``/tmp`` to ``root/tmp`` (``root``: its
        ``step_dir/root`` as this process reaches it; None: remove it instead), all but
        the kept mount point's chain (:meth:`keep`). Raises OSError if ``/tmp`` could not
        be emptied. Only the directories where entries were made are looked into (a step
        that left nothing: one read of the watch)."""
        dest = None if root is None else root + "/tmp"
        self.left = False
        events = None if self.watch is None else self.watch.changed()
        touched = self.held and self.let_go_touched(events)  # then emptied as any entry
        changed = None if events is None or -1 in self.wds else \
            {i for i, wd in enumerate(self.wds) if wd in events}
        if changed is not None:
            if touched:
                changed.add(0)
            if not changed:
                return
        left = self._empty(0, dest, root, changed)
        if left:
            raise OSError(f"private /tmp not emptied: {left[:3]}")

    def _empty(self, i: int, dest: str | None, root: str | None,
               changed: set[int] | None) -> list[str]:
        """Empty the chain's level ``i`` (0: the scratch) into ``dest``, but for the
        chain's next directory (emptied the same way); what is left. ``changed``: the
        levels where entries were made (None: all may have)."""
        fd = self.levels[i]
        keep = self.chain[i] if i < len(self.chain) else None
        held = self.held_tops if i == 0 else {}  # held binds' mount points: stay
        if changed is None or i in changed:
            names = [n for n in os.listdir(fd) if n not in held] if held else os.listdir(fd)
        elif keep is None:
            return []
        else:
            names = [keep]  # (nothing made here: the chain's directory is still in it)
        if keep in names:
            names.remove(keep)
            if i + 1 < len(self.chain) and (changed is None or max(changed) > i):
                left = self._empty(i + 1, None if dest is None else f"{dest}/{keep}", root,
                                   changed)
                if left:
                    return left
        if not names:
            return []
        self.left = True
        src = "/".join([self.scratch, *self.chain[:i]])
        if dest is not None:
            if i or not self.rooted:  # (else made ahead: make_ahead())
                if root is not None and i == 0:
                    try:
                        os.mkdir(root)
                    except FileExistsError:
                        pass
                os.makedirs(dest, exist_ok=True)
            for name in names:
                _move(f"{src}/{name}", f"{dest}/{name}")
            names = [n for n in os.listdir(fd) if n != keep and n not in held]
            if not names:
                return []
        for name in names:  # what could not be moved (or dest None): never kept
            _remove(f"{src}/{name}")
        return [n for n in os.listdir(fd) if n != keep and n not in held]


def _move(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst``; else copy it there (another file system, or ``dst``
    exists: merged) and remove it; failing that, leave it for the caller to remove."""
    try:
        os.rename(src, dst)
        return
    except OSError:
        pass
    try:
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
    except (OSError, shutil.Error):
        return  # (a FIFO or socket the step left: not copied)
    _remove(src)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _sweep(top: str) -> None:
    """Remove the scratch directories of workers that are gone (named ``<pid>-...``)."""
    for name in os.listdir(top):
        pid = name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's pid: EPERM)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(f"{top}/{name}", ignore_errors=True)
