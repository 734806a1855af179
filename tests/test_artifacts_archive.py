"""Packing outputs and unpacking inputs safely (V-3 of RELIABILITY.md)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from chute.artifacts.archive import UnsafeArchiveError, extract_tar, extract_zip, pack_tar, pack_zip
from chute.errors import UserError


def _tar(entries) -> bytes:
    """Build a tar.gz from (kind, name, data_or_target) triples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for kind, name, extra in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                data = extra.encode()
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
                tar.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
                tar.addfile(ti)
            elif kind in ("chr", "blk", "fifo"):
                ti.type = {"chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                           "fifo": tarfile.FIFOTYPE}[kind]
                ti.devmajor, ti.devminor = 1, 3
                tar.addfile(ti)
    return buf.getvalue()


def _zip(entries) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for kind, name, extra in entries:
            zi = zipfile.ZipInfo(name)
            if kind == "file":
                zi.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(zi, extra)
            elif kind == "sym":
                zi.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(zi, extra)
            elif kind == "chr":
                zi.external_attr = (stat.S_IFCHR | 0o644) << 16
                zf.writestr(zi, "")
    return buf.getvalue()


# Each case: the entries of a hostile archive. "victim" is a path beside the extraction
# root that an escape would create or overwrite.
TAR_CORPUS = {
    "dotdot": [("file", "../victim", "pwned")],
    "dotdot-deep": [("file", "a/b/../../../victim", "pwned")],
    "absolute": [("file", "{victim_abs}", "pwned")],
    "backslash": [("file", "..\\victim", "pwned")],
    "symlink-outside-abs": [("sym", "link", "{outside}")],
    "symlink-outside-rel": [("sym", "link", "../")],
    "symlink-then-file-through-it": [("sym", "link", "{outside}"), ("file", "link/victim", "pwned")],
    "symlink-inside-then-file-through-it": [("dir", "d", ""), ("sym", "link", "d"),
                                             ("file", "link/victim", "pwned")],
    "cve-2025-66626-shape": [("sym", "a", "."), ("sym", "a/b", ".."),
                             ("file", "a/b/victim", "pwned")],
    "symlink-chain-escape": [("sym", "l2", "sub/l/.."), ("dir", "sub", ""), ("sym", "sub/l", "..")],
    "symlink-overwrite-file": [("file", "f", "ok"), ("sym", "f", "{outside}")],
    "hardlink-outside": [("hard", "h", "{victim_abs}")],
    "hardlink-dotdot": [("hard", "h", "../victim")],
    "hardlink-unknown": [("hard", "h", "nope")],
    "char-device": [("chr", "dev", "")],
    "block-device": [("blk", "dev", "")],
    "fifo": [("fifo", "fifo", "")],
}

ZIP_CORPUS = {
    "dotdot": [("file", "../victim", "pwned")],
    "absolute": [("file", "{victim_abs}", "pwned")],
    "backslash": [("file", "..\\victim", "pwned")],
    "drive": [("file", "C:/victim", "pwned")],
    "symlink-outside": [("sym", "link", "{outside}")],
    "symlink-then-file-through-it": [("sym", "link", "{outside}"), ("file", "link/victim", "pwned")],
    "device": [("chr", "dev", "")],
}


def _fill(entries, victim: Path, outside: Path):
    return [(k, n.format(victim_abs=str(victim)), e.format(victim_abs=str(victim),
                                                           outside=str(outside)))
            for k, n, e in entries]


def _outside_snapshot(tmp_path: Path, root: Path) -> set[tuple[str, int]]:
    """Every path outside the extraction root, with its size (symlinks not followed)."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        if Path(dirpath) == tmp_path:
            dirnames[:] = [d for d in dirnames if d != root.name]
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            seen.add((p, os.lstat(p).st_size))
    return seen


@pytest.mark.parametrize("case", sorted(TAR_CORPUS))
def test_hostile_tar_is_refused_and_nothing_lands_outside(tmp_path, case):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    victim = tmp_path / "victim"
    before = _outside_snapshot(tmp_path, root)
    data = _tar(_fill(TAR_CORPUS[case], victim, outside))
    with pytest.raises(UserError):
        extract_tar(io.BytesIO(data), root)
    assert _outside_snapshot(tmp_path, root) == before
    assert not victim.exists() and not list(outside.iterdir())
    for p in root.rglob("*"):
        assert os.path.realpath(p).startswith(os.path.realpath(root) + os.sep) or p.is_symlink()


@pytest.mark.parametrize("case", sorted(ZIP_CORPUS))
def test_hostile_zip_is_refused_and_nothing_lands_outside(tmp_path, case):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    victim = tmp_path / "victim"
    zpath = tmp_path / "in.zip"
    zpath.write_bytes(_zip(_fill(ZIP_CORPUS[case], victim, outside)))
    before = _outside_snapshot(tmp_path, root)
    with pytest.raises(UnsafeArchiveError):
        extract_zip(zpath, root)
    assert _outside_snapshot(tmp_path, root) == before
    assert not victim.exists() and not list(outside.iterdir())


def test_benign_links_inside_the_tree_are_kept(tmp_path):
    data = _tar([("dir", "pkg", ""), ("file", "pkg/a.txt", "A"), ("sym", "pkg/b.txt", "a.txt"),
                 ("hard", "pkg/c.txt", "pkg/a.txt"), ("file", "./pkg/d.txt", "D")])
    extract_tar(io.BytesIO(data), tmp_path)
    assert (tmp_path / "pkg/b.txt").read_text() == "A"
    assert os.readlink(tmp_path / "pkg/b.txt") == "a.txt"
    c = tmp_path / "pkg/c.txt"
    assert c.read_text() == "A" and os.stat(c).st_nlink == 1  # a copy, not a link
    assert (tmp_path / "pkg/d.txt").read_text() == "D"


def test_corrupt_archives_are_user_errors(tmp_path):
    good = _tar([("file", "a", "x" * 100000)])
    with pytest.raises(UserError):
        extract_tar(io.BytesIO(good[: len(good) // 2]), tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(UserError):
        extract_zip(tmp_path / "bad.zip", tmp_path)


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(3000))
    os.chmod(src / "a.txt", 0o755)
    os.symlink("a.txt", src / "link")
    os.symlink("/etc/passwd", src / "abs-link")  # leaves the tree: skipped when packing
    return src


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_pack_then_unpack_round_trips(tmp_path, fmt):
    src = _tree(tmp_path)
    out = tmp_path / "dest"
    out.mkdir()
    buf = io.BytesIO()
    if fmt == "tar":
        pack_tar(src, buf)
        extract_tar(io.BytesIO(buf.getvalue()), out)
    else:
        pack_zip(src, buf)
        (tmp_path / "a.zip").write_bytes(buf.getvalue())
        extract_zip(tmp_path / "a.zip", out)
    assert (out / "src/a.txt").read_text() == "alpha"
    assert (out / "src/sub/b.bin").read_bytes() == (src / "sub/b.bin").read_bytes()
    assert os.readlink(out / "src/link") == "a.txt"
    assert not (out / "src/abs-link").exists()
    assert os.stat(out / "src/a.txt").st_mode & 0o100


def test_tar_output_is_reproducible_and_level_zero_is_stored(tmp_path):
    src = _tree(tmp_path)
    a, b, c = io.BytesIO(), io.BytesIO(), io.BytesIO()
    pack_tar(src, a)
    os.utime(src / "a.txt", (1, 1))  # mtimes do not enter the archive
    pack_tar(src, b)
    pack_tar(src, c, compression_level=0)
    assert a.getvalue() == b.getvalue()
    assert a.getvalue()[:2] == c.getvalue()[:2] == b"\x1f\x8b"
    assert len(c.getvalue()) > len(a.getvalue())
    with pytest.raises(UserError):
        pack_tar(src, io.BytesIO(), compression_level=12)
