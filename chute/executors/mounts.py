"""Mount namespaces and mounts, through libc: the system calls :mod:`chute.executors.sandbox`
builds a step's private view with, and a reused worker its private ``/tmp``
(:mod:`chute.executors.worker_tmp`).

As root a new mount namespace is ``unshare(CLONE_NEWNS)``; otherwise an unprivileged user
namespace is made with it (as rootless bubblewrap does). :func:`available` says whether
either works here (no namespaces in the kernel, or a seccomp filter, and it does not).
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = None


def libc():
    """The C library (errno kept), its mount calls typed."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    """mount(2); OSError naming ``target`` if it fails."""
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(libc().mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


MNT_DETACH = 2


def unmount(target: str) -> None:
    """Unmount ``target`` (with what is mounted below it); lazily if it is busy. A plain
    umount costs ~30 us; a lazy one waits for an RCU grace period, which takes ~0.5 ms
    and more on a busy machine."""
    path = target.encode()
    if libc().umount2(path, 0) == 0:
        return
    _check(libc().umount2(path, MNT_DETACH), f"umount {target}")


_userns = False  # whether unshare_mounts had to make a user namespace


def in_user_namespace() -> bool:
    """Whether :func:`unshare_mounts` made a user namespace (not root)."""
    return _userns


def unshare_mounts() -> None:
    """Enter a new mount namespace, as root or (failing that) in a new user namespace."""
    c = libc()
    if c.unshare(CLONE_NEWNS) == 0:
        return
    global _userns
    uid, gid = os.getuid(), os.getgid()
    _check(c.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    _userns = True
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def bind(src: str, target: str) -> None:
    """Bind-mount ``src`` (with what is mounted below it) onto ``target``."""
    mount(src, target, None, MS_BIND | MS_REC)


def unshare_private() -> None:
    """Enter a new mount namespace in which no mount reaches the host (single-threaded
    callers only: a user namespace cannot be made by a process with threads)."""
    unshare_mounts()
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do reaches the host


_available: bool | None = None


def available() -> bool:
    """True if a private mount namespace can be made here (tested once, in a child)."""
    global _available
    if _available is None:
        pid = os.fork()
        if pid == 0:
            try:
                unshare_mounts()
                mount(None, "/", None, MS_REC | MS_PRIVATE)
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        _available = os.waitstatus_to_exitcode(status) == 0
    return _available
