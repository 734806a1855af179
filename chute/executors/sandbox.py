"""A private filesystem view for one step: its own ``/tmp``, its own output paths.

Argo runs every step in its own container, so two steps writing ``/tmp/out.txt`` at the
same time never collide. chute gives a step with private paths (output parameters'
``valueFrom.path``, artifact paths, input artifact paths, emptyDir ``volumeMounts``) the
same guarantee with a Linux mount namespace, set up in the forked step process just
before ``exec``. The view is what the step would see in an image:

* the *private tops* — ``/tmp`` and the top directory of each private path outside the
  system directories (``/mnt``, ``/workspace``, ``/output`` ...) — live under
  ``step_dir/root``: after the step, ``/tmp/out.txt`` is ``step_dir/root/tmp/out.txt`` on
  the host. A top that exists on the host as a directory (``/tmp``, ``/mnt``, as in any
  image) starts empty; any other (``/workspace``, a file ``/output``) does not exist
  until the step makes it.
* Output paths are never pre-created. As with Argo's emissary, which copies
  ``outputs.parameters[].valueFrom.path`` and ``outputs.artifacts[].path`` out of the
  container after the command exits, the outputs are whatever the step left at those
  paths (:meth:`Plan.collect`); a step may ``mkdir /mnt/out``, write ``/output`` as a
  file, or replace it, exactly as in its container.
* Input artifacts are placed before the step (Argo's init container does the same), and
  each emptyDir volume mount is a fresh directory that is a real mount point (it shows
  in ``/proc/mounts``).
* host paths the step is *given* that lie under a private top (the step directory, the
  working directory, absolute paths in argv, the script, env values and PATH) are bound
  back in, so a host path passed to a step still means what it says;
* if every private top exists on the host as a directory (the usual case) the tops are
  simply mounted over the host's ("light" view). Otherwise ``step_dir/root`` becomes the
  step's root directory (``chroot``), with every other top-level entry of the host's
  ``/`` bind-mounted into it (so ``/usr``, ``/work``, ``/proc`` ... are the host's), and
  the step's default working directory is that ``/``, as in an image: what it writes at
  ``/result.txt`` lands in ``step_dir/root/result.txt``.
* a private path under a system directory (``/usr``, ``/etc``, ``/work``, ``/home`` ...)
  that does not exist on the host (an input at ``/usr/local/bin/kubectl``, an output at
  ``/work/out.txt``) is made through an overlay of its deepest existing ancestor: the
  step sees the host's files there, and what it writes goes to ``step_dir/upper/...``,
  never to the host. One that exists (an output ``/etc``) is the host's, read after the
  step and copied under ``step_dir/root``.

Steps without private paths get no namespace at all (it costs a fork of the supervisor
and a few ms; plain steps are started with ``posix_spawn``).

Why not rewrite the paths instead (replace ``/tmp/out.txt`` by a per-step path in the
command)? Paths are also built at run time (``open(d + "/out.txt")``, ``mkdir /mnt/out``
in a script, a tool's defaults), which no rewriting can find; a mount namespace catches
them all. This is what bubblewrap does (``bwrap --dev-bind / / --bind ... /tmp``); doing
it in the forked child instead of exec'ing ``bwrap`` saves the extra process (bwrap costs
3-5 ms a launch here) and keeps the exit status exact (bwrap turns death by a signal into
exit code ``128+n``, losing the signal). As root it uses ``unshare(CLONE_NEWNS)``;
otherwise an unprivileged user namespace (as rootless bwrap does). Where neither works
(no namespaces in the kernel or a seccomp filter), :func:`~chute.executors.mounts.available` is False and private
paths are written to the host paths directly, which is reported in the step's log.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chute.executors import mounts

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

def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out[::-1]


def _host_dir(top: str) -> bool:
    """Whether the host has ``/top`` as a real directory (not a symlink)."""
    return os.path.isdir("/" + top) and not os.path.islink("/" + top)


def _mount_point(dst: Path, src: str) -> list[Path]:
    """Make ``dst`` ready to show the host's ``src``: an empty directory or file to bind
    onto, or a copy of a symlink. Returns what was made (for cleanup)."""
    if os.path.lexists(dst):
        return []
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    elif os.path.isdir(src):
        dst.mkdir()
    elif os.path.exists(src):
        dst.touch()
    else:
        return []
    return [dst]


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
    volumes: list[str] = field(default_factory=list)  # emptyDir mount paths
    overlays: list[str] = field(default_factory=list)  # host dirs seen through an overlay
    skeleton: list[Path] = field(default_factory=list)  # mount points prepare() created

    @property
    def root(self) -> Path:
        """The private tops' contents (and, in a new root, the step's ``/``)."""
        return self.step_dir / "root"

    @property
    def upper(self) -> Path:
        """What the step writes through overlays (kept apart from ``root``: in a new root,
        ``root/usr`` is where the host's ``/usr`` is mounted)."""
        return self.step_dir / "upper"

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
        if not self.is_private(path):
            return Path(path)
        if any(path == o or path.startswith(o + "/") for o in self.overlays):
            return self.upper / path.lstrip("/")
        return self.root / path.lstrip("/")

    def prepare(self) -> None:
        """Before the fork: input files, private directories and mount points.

        Mount points are made here, on the host, and listed in ``skeleton`` so that
        :meth:`cleanup` removes them after the step. Output paths are not made: like an
        image, the view holds the top directories the host has (``/tmp``, ``/mnt``),
        the input files and the emptyDir volumes, and nothing else.
        """
        if not (self.private_tops or self.input_files or self.volumes or self.overlays):
            return  # nothing of the step lives under root/ (a directory less per step)
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
        # the top directories an image has (/tmp, /mnt) exist; /workspace or /output
        # do not, unless an input or a volume is placed there
        for top in self.private_tops:
            path = self.root / top
            if not os.path.lexists(path) and (self.light or _host_dir(top)):
                path.mkdir()
        (self.root / "tmp").chmod(0o1777)
        for i, o in enumerate(self.overlays):
            (self.upper / o.lstrip("/")).mkdir(parents=True, exist_ok=True)  # upper layer
            (self.step_dir / ".ovl" / str(i)).mkdir(parents=True, exist_ok=True)
        for v in self.volumes:
            if self.is_private(v):
                self.host_path(v).mkdir(parents=True, exist_ok=True)
        if not self.light:  # mount points of the host's top-level entries in the new root
            for name in sorted(os.listdir("/")):
                if name not in self.private_tops:
                    self.skeleton += _mount_point(self.root / name, "/" + name)
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
                if path.is_symlink():
                    path.unlink()
                elif path.is_dir():
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
        ``/output``) the step gets a new root, ``step_dir/root``, where it can make them.
        """
        return all(_host_dir(t) for t in self.private_tops)

    def enter(self) -> None:
        """In the forked step process: build the private view (and chroot into it)."""
        if not self.enabled:
            return
        mounts.unshare_private()
        if self.light:
            self.mount_light()
            self._mount_overlays("")
            self._mount_volumes("")
            return
        # a new root: step_dir/root itself, holding the private tops and bind mounts of
        # the host's other top-level entries (mount points made by prepare()). The entry
        # holding step_dir is bound first and the host paths to re-share next, so that
        # no recursive bind copies the mounts made in step_dir/root before it.
        new = str(self.root)
        names = sorted(os.listdir("/"), key=lambda n: n != top_of(new))
        for i, name in enumerate(names):
            if i == 1 or len(names) == 1:
                for src in self._top_exposes():
                    mounts.bind(src, new + src)
            if name in self.private_tops or os.path.islink("/" + name):
                continue
            if os.path.lexists(new + "/" + name):
                try:
                    mounts.bind("/" + name, new + "/" + name)
                except OSError:
                    pass  # an odd host entry the view can do without
        self._mount_overlays(new)
        self._mount_volumes(new)
        os.chroot(new)
        os.chdir("/")

    def mount_light(self) -> None:
        """In a private mount namespace (:func:`~chute.executors.mounts.unshare_private`):
        mount the private tops (``step_dir/root/<top>`` over ``/<top>``) with the host
        paths to re-share inside."""
        # host paths to re-share go onto their mount points in step_dir/root/<top>
        # first, so that binding that directory over /<top> (recursively) takes them
        for src in self._top_exposes():
            mounts.bind(src, str(self.host_path(src)))
        for top in self.private_tops:
            mounts.bind(str(self.root / top), "/" + top)

    def _top_exposes(self) -> list[str]:
        return [e for e in self.expose if any(_under(e, t) for t in self.private_tops)]

    def _mount_overlays(self, new: str) -> None:
        """Overlay each ``overlays`` dir: the host's content below, the step's writes going
        to ``step_dir/upper/<dir>``; then re-share the host paths given under it."""
        for i, o in enumerate(self.overlays):
            opts = (
                f"lowerdir={o},upperdir={self.upper / o.lstrip('/')},"
                f"workdir={self.step_dir / '.ovl' / str(i)}"
            )
            userns = ",userxattr" if mounts.in_user_namespace() else ""
            mounts.mount("overlay", new + o, "overlay", 0, opts + userns)
            for src in self.expose:
                if src.startswith(o + "/"):
                    mounts.bind(src, new + src)

    def _mount_volumes(self, new: str) -> None:
        """Make each emptyDir volume's directory a mount point of its own (a bind onto
        itself), as a volume is in a container: it shows in ``/proc/mounts``."""
        for v in self.volumes:
            if self.is_private(v):
                mounts.mount(new + v, new + v, None, mounts.MS_BIND)

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
    spec: dict, env: dict[str, str], argv: list[str], *, enabled: bool | None = None,
    reach: Callable[[str], str] | None = None,
) -> Plan:
    """The filesystem plan for a launch spec (launch.json form). ``reach`` maps a host
    path to how this process reaches it (a reused worker's own /tmp hides the host's:
    :meth:`chute.executors.worker_tmp.PrivateTmp.host`)."""
    step_dir = Path(spec["step_dir"])
    inputs = dict(spec.get("input_files") or {})
    volumes = [os.path.normpath(v) for v in spec.get("volume_mounts") or [] if os.path.isabs(v)]
    paths = [*(spec.get("private_paths") or []), *inputs, *(spec.get("output_paths") or []),
             *volumes]
    paths = [os.path.normpath(p) for p in paths if p and os.path.isabs(p)]
    if not paths:
        return Plan(step_dir, input_files=inputs)
    if enabled is None:
        enabled = mounts.available()
    tops = {"tmp"} | {top_of(p) for p in paths}
    tops = sorted(t for t in tops if t and t not in SYSTEM_TOPS)
    plan = Plan(step_dir, private_tops=tops, input_files=inputs, enabled=enabled,
                volumes=volumes)
    plan.overlays = _overlays(step_dir, [p for p in paths if top_of(p) in SYSTEM_TOPS])
    if enabled:
        plan.expose = _exposed(plan, paths, spec, env, argv, reach or _same)
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


@functools.lru_cache(maxsize=4096)  # the same script and env values step after step
def _paths_in(text: str) -> tuple[str, ...]:
    return tuple(_PATHLIKE.findall(text))


def _same(path: str) -> str:
    return path


def _exposed(
    plan: Plan, private: list[str], spec: dict, env: dict[str, str], argv: list[str],
    reach: Callable[[str], str] = _same,
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
        candidates.update(_paths_in(text))
    tops = ["/" + t for t in plan.private_tops] + plan.overlays
    prefixes = tuple(t + "/" for t in tops)
    out: set[str] = set()
    for c in candidates:
        if not c.startswith(prefixes) and "/." not in c and "//" not in c:
            continue  # not under a top, even normalised (most: PATH, the env's paths)
        c = os.path.normpath(c)
        top = next((t for t in tops if c.startswith(t + "/")), None)
        if top is None:
            continue  # not hidden by the private view, or a private top itself
        part = exposed_part(c, top.count("/") + 1, private, reach)
        if part is not None:
            out.add(part)
    return outermost(out)


def exposed_part(c: str, depth: int, private: list[str],
                 reach: Callable[[str], str] = _same) -> str | None:
    """What of ``c`` (normalised, below a private top whose entries have ``depth``
    slashes: 2 for ``/tmp/a``) is exposed: its deepest part that exists on the host, if
    that is a directory right below the top or anything deeper, and holds no private
    path; None if nothing (see :func:`_exposed`)."""
    while c.count("/") > depth and not os.path.lexists(reach(c)):
        c = os.path.dirname(c)  # reach a file to be created through its directory
    if not os.path.lexists(reach(c)) or (c.count("/") == depth
                                         and not os.path.isdir(reach(c))):
        return None  # e.g. /tmp/x.txt: a scratch file, private to the step
    if any(p == c or p.startswith(c + "/") for p in private):
        return None  # re-sharing it would share a private path
    return c


def outermost(paths) -> list[str]:
    """``paths`` less those inside another one, outermost first: what to bind (a child of
    a bound path is already visible)."""
    chosen: list[str] = []
    for c in sorted(paths, key=len):
        if not any(c.startswith(e + "/") for e in chosen):
            chosen.append(c)
    return chosen
