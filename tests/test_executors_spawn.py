"""A step's script file (chute.executors.spawn.place_script): written once per source by a
supervisor, then hard-linked into later steps' directories while it is unchanged."""

from __future__ import annotations

import os
import stat

import pytest

from chute.executors import spawn


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(spawn, "_scripts", {})


def placed(path) -> tuple[str, int, int]:
    st = os.stat(path)
    return path.read_text(), stat.S_IMODE(st.st_mode), st.st_ino


def test_later_steps_link_the_first_steps_script(tmp_path):
    a, b, c = (tmp_path / d / "script" for d in "abc")
    for p in (a, b, c):
        p.parent.mkdir()
    spawn.place_script(a, "print('x')\n")
    spawn.place_script(b, "print('x')\n")
    spawn.place_script(c, "print('other')\n")
    assert placed(a)[:2] == placed(b)[:2] == ("print('x')\n", 0o755)
    assert placed(a)[2] == placed(b)[2] and os.stat(a).st_nlink == 2  # one file, two names
    assert placed(c)[:2] == ("print('other')\n", 0o755) and placed(c)[2] != placed(a)[2]


def test_a_changed_or_removed_script_is_written_again(tmp_path):
    dirs = [tmp_path / f"s{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
    src = "print('x')\n"
    spawn.place_script(dirs[0] / "script", src)
    (dirs[0] / "script").write_text("print('changed by its step')\n")  # same inode, new text
    spawn.place_script(dirs[1] / "script", src)
    assert (dirs[1] / "script").read_text() == src
    assert placed(dirs[1] / "script")[2] != placed(dirs[0] / "script")[2]
    (dirs[1] / "script").chmod(0o700)  # a mode change counts as a change too
    spawn.place_script(dirs[2] / "script", src)
    assert placed(dirs[2] / "script")[1:] != placed(dirs[1] / "script")[1:]
    assert placed(dirs[2] / "script")[1] == 0o755
    (dirs[2] / "script").unlink()  # its run was deleted
    spawn.place_script(dirs[3] / "script", src)
    assert placed(dirs[3] / "script")[:2] == (src, 0o755)


def test_an_existing_file_is_replaced_not_rewritten_in_place(tmp_path):
    """A file already at the path may be another step's script under a second name: it
    must keep its content."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    spawn.place_script(tmp_path / "a" / "script", "one\n")
    os.link(tmp_path / "a" / "script", tmp_path / "b" / "script")
    spawn._scripts.clear()
    spawn.place_script(tmp_path / "b" / "script", "two\n")
    assert (tmp_path / "a" / "script").read_text() == "one\n"
    assert (tmp_path / "b" / "script").read_text() == "two\n"
    spawn.place_script(tmp_path / "a" / "script", "two\n")  # linked over an existing name
    assert (tmp_path / "a" / "script").read_text() == "two\n"
    assert placed(tmp_path / "a" / "script")[2] == placed(tmp_path / "b" / "script")[2]
