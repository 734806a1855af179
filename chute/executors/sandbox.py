"""A private filesystem view for one step: its own ``/tmp`` and its own output paths.

Argo runs every step in its own container, so two steps writing ``/tmp/out.txt`` at the
same time never collide. chute gives a step with private paths (output parameters'
``valueFrom.path``, artifact paths, input artifact paths) the same guarantee with a Linux
mount namespace, set up in the forked step process just before ``exec``:

* the *private tops* — ``/tmp`` and the top directory of each private path outside the
  system directories (``/mnt``, ``/workspace``, ``/argo`` ...) — are instead bound to
  ``step_dir/root/<top>``, so after the step ``/tmp/out.txt`` is
  ``step_dir/root/tmp/out.txt`` on the host; a private path right under ``/`` (such as
  ``/output``) is bound to a file ``step_dir/root/output``;
* host paths the step is *given* that lie under a private top (the step directory, the
  working directory, absolute paths in argv, the script, env values and PATH) are bound
  back in, so a host path passed to a step still means what it says;
* if every private top exists on the host as a directory (``/tmp``, ``/mnt``: the usual
  case) they are simply mounted over the host's ("light" view). Otherwise a fresh tmpfs
  becomes the step's root, with every top-level entry of the host's ``/`` bind-mounted
  into it (so ``/usr``, ``/work``, ``/proc`` ... are the host's) next to the private
  tops, and the step's default working directory is that ``/``, as in an image.

* a private path under a system directory (``/usr``, ``/etc``, ``/work``, ``/home`` ...)
  that does not exist on the host (an input at ``/usr/local/bin/kubectl``, an output at
  ``/work/out.txt``) is made through an overlay of its deepest existing ancestor: the
  step sees the host's files there, and what it writes goes to ``step_dir/root/...``,
  never to the host. One that exists (an output ``/etc``) is the host's, read after the
  step and copied under ``step_dir/root``.

Steps without private paths get no namespace at all (it costs a fork of the supervisor
and a few ms; plain steps are started with ``posix_spawn``).

This is what bubblewrap does (``bwrap --dev-bind / / --bind ... /tmp``); doing it in the
forked child instead of exec'ing ``bwrap`` saves the extra process (bwrap costs 3-5 ms a
launch here) and keeps the exit status exact (bwrap turns death by a signal into exit code
``128+n``, losing the signal). As root it uses ``unshare(CLONE_NEWNS)``; otherwise an
unprivileged user namespace (as rootless bwrap does). Where neither works (no namespaces
in the kernel or a seccomp filter), :func:`available` is False and private paths are
written to the host paths directly, which is reported in the step's log.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

# Top-level directories that are never made private: hiding them would hide the system,
# the user's files or chute itself. Private paths under them are shared host paths.
SYSTEM_TOPS = frozenset(
    [
        "bin",
        "boot",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "media",
        "nix",
        "opt",
        "proc",
        "root",
        "run",
        "sbin",
        "snap",
        "srv",
        "sys",
        "usr",
        "var",
        "work",
    ]
)

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_c().mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


_userns = False  # whether _unshare_mounts had to make a user namespace


def _unshare_mounts() -> None:
    """Enter a new mount namespace, as root or (failing that) in a new user namespace."""
    libc = _c()
    if libc.unshare(CLONE_NEWNS) == 0:
        return
    global _userns
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    _userns = True
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


_available: bool | None = None


def available() -> bool:
    """True if a private mount namespace can be made here (tested once, in a child)."""
    global _available
    if _available is None:
        pid = os.fork()
        if pid == 0:
            try:
                _unshare_mounts()
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        _available = os.waitstatus_to_exitcode(status) == 0
    return _available


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out[::-1]


def _bind_into(new_root: str, src: str, name: str) -> None:
    """Make ``new_root/name`` show ``src`` (a symlink is copied, not bound)."""
    dst = new_root + "/" + name
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    if os.path.isdir(src):
        os.mkdir(dst)
    elif os.path.exists(src):
        open(dst, "w").close()
    else:
        return
    _mount(src, dst, None, MS_BIND | MS_REC)


def top_of(path: str) -> str:
    """``/tmp/a/b`` -> ``tmp``."""
    parts = Path(path).parts
    return parts[1] if len(parts) > 1 else ""


def _under(path: str, top: str) -> bool:
    return path == "/" + top or path.startswith("/" + top + "/")


@dataclass
class Plan:
    """How one step's filesystem view is made, and where its private paths live."""

    step_dir: Path
    private_tops: list[str] = field(default_factory=list)  # empty: no namespace
    expose: list[str] = field(default_factory=list)  # host paths bound back in
    input_files: dict[str, str] = field(default_factory=dict)
    enabled: bool = False
    top_files: list[str] = field(default_factory=list)  # private tops that are files
    overlays: list[str] = field(default_factory=list)  # host dirs seen through an overlay
    skeleton: list[Path] = field(default_factory=list)  # mount points prepare() created

    @property
    def root(self) -> Path:
        return self.step_dir / "root"

    @property
    def default_cwd(self) -> str:
        """Working directory when the template names none: ``/`` in a new root (as in most
        images: ``open("result.txt", "w")`` then writes the output ``/result.txt``), else
        the step directory (never the host's ``/``)."""
        return "/" if self.enabled and not self.light else str(self.step_dir)

    def is_private(self, path: str) -> bool:
        """Whether the step's ``path`` is its own (under a private top or an overlay)."""
        return self.enabled and (
            any(_under(path, t) for t in self.private_tops)
            or any(path == o or path.startswith(o + "/") for o in self.overlays)
        )

    def host_path(self, path: str) -> Path:
        """Where the step's ``path`` lives on the host while and after it runs."""
        if self.is_private(path):
            return self.root / path.lstrip("/")
        return Path(path)

    def prepare(self) -> None:
        """Before the fork: input files, private directories and mount points.

        Mount points under private directories are made here, on the host, and listed in
        ``skeleton`` so that :meth:`cleanup` removes them after the step.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for dest, src in self.input_files.items():
            target = self.host_path(dest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)  # with its mode: a tool stays executable
        if not self.enabled:
            return
        # the top directories exist, as in an image (/tmp, /mnt); nothing below them does
        for top in self.private_tops:
            path = self.root / top
            if os.path.lexists(path):
                continue  # e.g. an input file placed at /art
            if top in self.top_files:
                path.touch()  # a placeholder to bind the step's /output onto
                os.utime(path, (0, 0))  # epoch: "never written" (see collect)
            else:
                path.mkdir()
        (self.root / "tmp").chmod(0o1777)
        for i, o in enumerate(self.overlays):
            (self.root / o.lstrip("/")).mkdir(parents=True, exist_ok=True)  # upper layer
            (self.step_dir / ".ovl" / str(i)).mkdir(parents=True, exist_ok=True)
        if not self.light:
            (self.step_dir / ".mnt").mkdir(exist_ok=True)
        for src in self.expose:
            mp = self.host_path(src)
            if os.path.isdir(src):
                self.skeleton += _missing_ancestors(mp)
                mp.mkdir(parents=True, exist_ok=True)
            else:
                self.skeleton += _missing_ancestors(mp.parent)
                mp.parent.mkdir(parents=True, exist_ok=True)
                if not mp.exists():
                    mp.touch()
                    self.skeleton.append(mp)

    def cleanup(self) -> None:
        """Remove the mount points prepare() made, unless the step put something there."""
        for path in reversed(self.skeleton):
            try:
                if path.is_dir():
                    path.rmdir()
                elif path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                pass  # not empty: the step wrote there, keep it
        self.skeleton.clear()

    @property
    def light(self) -> bool:
        """Whether the view can be the host's root with the private tops mounted over.

        That takes a few mounts instead of one per top-level entry (a namespace with fewer
        mounts is also faster to tear down), but needs every private top to exist on the
        host as a directory (``/tmp``, ``/mnt``); otherwise (``/workspace``, a file
        ``/output``) the step gets a new root (tmpfs) where they can be made.
        """
        return not self.top_files and all(
            os.path.isdir("/" + t) and not os.path.islink("/" + t) for t in self.private_tops
        )

    def enter(self) -> None:
        """In the forked step process: build the private view (and chroot into it)."""
        if not self.enabled:
            return
        _unshare_mounts()
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do reaches the host
        if self.light:
            # host paths to re-share go onto their mount points in step_dir/root/<top>
            # first, so that binding that directory over /<top> (recursively) takes them
            for src in self._top_exposes():
                _mount(src, str(self.host_path(src)), None, MS_BIND | MS_REC)
            for top in self.private_tops:
                _mount(str(self.root / top), "/" + top, None, MS_BIND | MS_REC)
            self._mount_overlays("")
            return
        # a new root: a tmpfs (no files made on the host for it) holding bind mounts of the
        # host's top-level entries and of step_dir/root/<top> for the private tops
        new = str(self.step_dir / ".mnt")
        _mount("tmpfs", new, "tmpfs", 0, "mode=0755")
        for name in os.listdir("/"):
            if name not in self.private_tops:
                try:
                    _bind_into(new, "/" + name, name)
                except OSError:
                    pass  # an odd host entry the view can do without
        for top in self.private_tops:
            _bind_into(new, str(self.root / top), top)
        for src in self._top_exposes():  # mount points made by prepare(), via the binds above
            _mount(src, new + src, None, MS_BIND | MS_REC)
        self._mount_overlays(new)
        os.chroot(new)
        os.chdir("/")

    def _top_exposes(self) -> list[str]:
        return [e for e in self.expose if any(_under(e, t) for t in self.private_tops)]

    def _mount_overlays(self, new: str) -> None:
        """Overlay each ``overlays`` dir: the host's content below, the step's writes going
        to ``step_dir/root/<dir>``; then re-share the host paths given under it."""
        for i, o in enumerate(self.overlays):
            opts = (
                f"lowerdir={o},upperdir={self.root / o.lstrip('/')},"
                f"workdir={self.step_dir / '.ovl' / str(i)}"
            )
            _mount("overlay", new + o, "overlay", 0, opts + (",userxattr" if _userns else ""))
            for src in self.expose:
                if src.startswith(o + "/"):
                    _mount(src, new + src, None, MS_BIND | MS_REC)

    def collect(self, output_paths: list[str]) -> dict[str, str]:
        """Host paths of the outputs that exist (step path -> host path); absent ones omitted.

        Outputs written to shared host paths are copied under ``step_dir/root`` so the
        result does not change when another step writes the same path later.
        """
        out: dict[str, str] = {}
        for p in output_paths:
            host = self.host_path(p)
            if not os.path.lexists(host):
                continue
            if top_of(p) in self.top_files and self.is_private(p):
                st = host.stat()
                if st.st_size == 0 and st.st_mtime == 0:
                    continue  # the placeholder prepare() made, never written
            if not self.is_private(p):
                snap = self.root / p.lstrip("/")
                snap.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if os.path.isdir(host):
                        shutil.copytree(host, snap, dirs_exist_ok=True, symlinks=True)
                    else:
                        shutil.copyfile(host, snap)
                except OSError:
                    continue
                host = snap
            out[p] = str(host)
        return out


def plan_for(
    spec: dict, env: dict[str, str], argv: list[str], *, enabled: bool | None = None
) -> Plan:
    """The filesystem plan for a launch spec (launch.json form)."""
    step_dir = Path(spec["step_dir"])
    inputs = dict(spec.get("input_files") or {})
    paths = [*(spec.get("private_paths") or []), *inputs, *(spec.get("output_paths") or [])]
    paths = [os.path.normpath(p) for p in paths if p and os.path.isabs(p)]
    if not paths:
        return Plan(step_dir, input_files=inputs)
    if enabled is None:
        enabled = available()
    tops = {"tmp"} | {top_of(p) for p in paths}
    tops = sorted(t for t in tops if t and t not in SYSTEM_TOPS)
    # a private path right under / (Argo's expression-tag example writes /output) is taken
    # for a file, unless it is also the directory of another private path
    deep = {top_of(p) for p in paths if p.count("/") > 1}
    files = sorted({top_of(p) for p in paths if p.count("/") == 1} & set(tops) - deep - {"tmp"})
    plan = Plan(step_dir, private_tops=tops, input_files=inputs, enabled=enabled, top_files=files)
    plan.overlays = _overlays(step_dir, [p for p in paths if top_of(p) in SYSTEM_TOPS])
    if enabled:
        plan.expose = _exposed(plan, paths, spec, env, argv)
    return plan


def _overlays(step_dir: Path, paths: list[str]) -> list[str]:
    """Host directories to overlay so that private paths under system directories (an
    input at ``/usr/local/bin/tool``, an output at ``/work/out.txt``) are the step's own.

    A path that exists on the host stays shared (an output ``/etc`` is the host's, read
    after the step). Otherwise its deepest existing ancestor directory is overlaid,
    unless that cannot be done (it holds the step directory, or its name would need
    escaping in mount options).
    """
    out: set[str] = set()
    sd = str(step_dir)
    for p in paths:
        if os.path.lexists(p):
            continue
        d = os.path.dirname(p)
        while d != "/" and not os.path.lexists(d):
            d = os.path.dirname(d)
        if d.count("/") < 2 and top_of(d) in ("proc", "sys", "dev"):
            continue  # kernel file systems: never
        if d == "/" or os.path.islink(d) or not os.path.isdir(d):
            continue
        if sd == d or sd.startswith(d + "/") or d.startswith(sd + "/"):
            continue  # overlayfs refuses an upper layer inside its lower one
        if any(c in d + sd for c in ",:\\"):
            continue
        out.add(d)
    # an overlay inside another is already covered by the outer one
    return sorted(o for o in out if not any(o.startswith(x + "/") for x in out))


_PATHLIKE = re.compile(r"(?<![\w.~-])/[^\s'\"`;|&<>(){}$,=:*?]+")


def _exposed(
    plan: Plan, private: list[str], spec: dict, env: dict[str, str], argv: list[str]
) -> list[str]:
    """Host paths under private tops that the step is handed and must still see.

    Candidates are the step directory, the working directory, and every absolute path
    that appears in argv, the script source and env values (``sh -c "... >> /tmp/x/log"``
    included). What is exposed is the deepest part of a candidate that exists on the
    host (a file the step will create is reached through its existing directory), if
    that is a directory below a private top or anything deeper (``/tmp/data/``,
    ``/tmp/data/x``, but never a file ``/tmp/x.txt``: scratch files stay private), and
    contains no private path.
    """
    texts = [str(plan.step_dir), spec.get("working_dir") or "", *argv, *env.values()]
    texts.append(spec.get("script_source") or "")
    candidates: set[str] = set()
    for text in texts:
        if "\0" in text:
            continue
        candidates.update(_PATHLIKE.findall(text))
    tops = ["/" + t for t in plan.private_tops] + plan.overlays
    out: set[str] = set()
    for c in candidates:
        c = os.path.normpath(c)
        top = next((t for t in tops if c.startswith(t + "/")), None)
        if top is None:
            continue  # not hidden by the private view, or a private top itself
        depth = top.count("/") + 1  # /tmp/a: one level below the top
        while c.count("/") > depth and not os.path.lexists(c):
            c = os.path.dirname(c)  # reach a file to be created through its directory
        if not os.path.lexists(c) or (c.count("/") == depth and not os.path.isdir(c)):
            continue  # e.g. /tmp/x.txt: a scratch file, private to the step
        if any(p == c or p.startswith(c + "/") for p in private):
            continue  # re-sharing it would share a private path
        out.add(c)
    # bind parents first, and only once: a child of an exposed path is already visible
    chosen: list[str] = []
    for c in sorted(out, key=len):
        if not any(c.startswith(e + "/") for e in chosen):
            chosen.append(c)
    return chosen
