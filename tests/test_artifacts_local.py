"""The local artifact repository: outputs saved as Argo does, inputs placed back, GC."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from chute.artifacts import ArtifactRecord, ArtifactRepository, gc, place_inputs, save_outputs
from chute.errors import NotFoundError, UnsupportedError, UserError


@pytest.fixture
def repo(chute_home) -> ArtifactRepository:
    return ArtifactRepository.from_settings()


def _outputs(tmp_path: Path) -> Path:
    step = tmp_path / "step"
    (step / "dir" / "sub").mkdir(parents=True)
    (step / "dir" / "a.txt").write_text("alpha\n")
    (step / "dir" / "sub" / "b.csv").write_text("x,y\n1,2\n")
    (step / "hello.txt").write_text("hello world\n")
    return step


def test_default_repository_is_the_chute_home_directory(chute_home, repo):
    assert repo.uri == (chute_home / "artifacts").resolve().as_uri()


def test_outputs_then_inputs_round_trip_every_archive_strategy(tmp_path, repo):
    step = _outputs(tmp_path)
    uid, node = str(uuid.uuid4()), "wf-123"
    specs = [
        {"name": "tree", "path": "/tmp/dir"},
        {"name": "tree-none", "path": "/tmp/dir", "archive": {"none": {}}},
        {"name": "hello", "path": "/tmp/hello.txt", "archive": {"none": {}}},
        {"name": "hello-nc", "path": "/tmp/hello.txt", "archive": {"tar": {"compressionLevel": 0}}},
        {"name": "hello-zip", "path": "/tmp/hello.txt", "archive": {"zip": {}}},
        {"name": "absent", "path": "/tmp/absent", "optional": True},
    ]
    host = {"/tmp/dir": step / "dir", "/tmp/hello.txt": step / "hello.txt"}
    recs = save_outputs(repo, specs, host, workflow_uid=uid, node_id=node)
    assert recs["absent"] is None
    assert recs["tree"].key == f"{uid}/{node}/tree.tgz" and recs["tree"].archive == "tgz"
    assert recs["hello"].key == f"{uid}/{node}/hello/hello.txt"
    assert recs["hello-zip"].key.endswith(".zip")
    for r in recs.values():
        if r:
            assert r.digest.startswith("sha256:") and len(r.digest) == 71
            assert r.size == repo.size(r.key) and r.size > 0
            assert ArtifactRecord.from_dict(r.to_dict()) == r
    # the "none" file is stored as is, hard-linked (ext4 has no reflink) not copied
    assert os.stat(step / "hello.txt").st_nlink == 2

    inputs = tmp_path / "inputs"
    names = [n for n in recs if recs[n]]
    placed = place_inputs(repo, [{"name": n, "path": f"/in/{n}", "from": "x"} for n in names],
                          {n: inputs / n for n in names}, records=recs)
    for n in ("tree", "tree-none"):
        assert (inputs / n / "a.txt").read_text() == "alpha\n"
        assert (inputs / n / "sub" / "b.csv").read_text() == "x,y\n1,2\n"
    for n in ("hello", "hello-nc", "hello-zip"):
        assert (inputs / n).read_text() == "hello world\n"
    assert placed["tree"].digest == recs["tree"].digest
    # a step editing its input never changes the stored artifact
    (inputs / "hello").write_text("changed")
    again = tmp_path / "again"
    repo.load(recs["hello"], again)
    assert again.read_text() == "hello world\n"


def test_same_content_gives_same_digest_and_changed_content_a_new_one(tmp_path, repo):
    step = _outputs(tmp_path)
    a = repo.save(step / "dir", name="d", workflow_uid="u1", node_id="n1")
    os.utime(step / "dir" / "a.txt", (5, 5))
    b = repo.save(step / "dir", name="d", workflow_uid="u2", node_id="n1")
    (step / "dir" / "a.txt").write_text("beta\n")
    c = repo.save(step / "dir", name="d", workflow_uid="u3", node_id="n1")
    assert a.digest == b.digest != c.digest


def test_sub_path_and_key_only_artifacts(tmp_path, repo):
    step = _outputs(tmp_path)
    recs = save_outputs(repo, [{"name": "d", "path": "/d", "archive": {"none": {}},
                                "s3": {"key": "shared/parts/"}},
                               {"name": "f", "path": "/f", "s3": {"key": "my-file"}}],
                        {"/d": step / "dir", "/f": step / "hello.txt"},
                        workflow_uid="u", node_id="n")
    assert recs["d"].key == "shared/parts" and recs["f"].key == "my-file"
    dest = tmp_path / "in"
    placed = place_inputs(repo, [
        {"name": "csv", "path": "/x", "s3": {"key": "shared/parts/sub/b.csv"}},
        {"name": "dir", "path": "/y", "s3": {"key": "shared/parts"}},
        {"name": "file", "path": "/z", "s3": {"key": "my-file"}},  # a tgz: unpacked
        {"name": "sub", "path": "/w", "from": "x", "subPath": "sub/b.csv"},
    ], {n: dest / n for n in ("csv", "dir", "file", "sub")}, records={"sub": recs["d"]})
    assert (dest / "csv").read_text() == "x,y\n1,2\n"
    assert (dest / "dir" / "a.txt").read_text() == "alpha\n"
    assert (dest / "file").read_text() == "hello world\n"
    assert (dest / "sub").read_text() == "x,y\n1,2\n"
    assert placed["csv"].source == "s3"
    with pytest.raises(UserError, match="leaves the artifact|segment"):
        repo.load(recs["d"], tmp_path / "bad", sub_path="../../etc/passwd")


def test_missing_artifacts_name_the_key_and_optional_ones_give_none(tmp_path, repo):
    with pytest.raises(NotFoundError, match="no/such/key"):
        place_inputs(repo, [{"name": "m", "path": "/m", "s3": {"key": "no/such/key"}}],
                     {"m": tmp_path / "m"})
    got = place_inputs(repo, [{"name": "m", "path": "/m", "optional": True,
                               "s3": {"key": "no/such/key"}},
                              {"name": "f", "path": "/f", "from": "{{x}}", "optional": True}],
                       {"m": tmp_path / "m", "f": tmp_path / "f"}, records={})
    assert got == {"m": None, "f": None} and not (tmp_path / "m").exists()
    with pytest.raises(NotFoundError, match="'out'.*/tmp/out"):
        save_outputs(repo, [{"name": "out", "path": "/tmp/out"}], {}, workflow_uid="u",
                     node_id="n")


def test_raw_input_and_mode(tmp_path, repo):
    placed = place_inputs(repo, [{"name": "r", "path": "/r", "raw": {"data": "line\n"},
                                  "mode": 0o600}], {"r": tmp_path / "r"})
    assert (tmp_path / "r").read_text() == "line\n"
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o600
    assert placed["r"].digest == ("sha256:" + __import__("hashlib").sha256(b"line\n").hexdigest())


def test_unsupported_sources_are_clear(tmp_path, repo):
    with pytest.raises(UnsupportedError, match="gcs"):
        place_inputs(repo, [{"name": "g", "path": "/g", "gcs": {"key": "k"}}],
                     {"g": tmp_path / "g"})


def test_existing_input_path_is_refused(tmp_path, repo):
    (tmp_path / "busy").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        place_inputs(repo, [{"name": "r", "path": "/r", "raw": {"data": "y"}}],
                     {"r": tmp_path / "busy"})


def test_git_input_from_a_local_bare_repository(tmp_path, repo):
    if not __import__("shutil").which("git"):
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    work, bare = tmp_path / "work", tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "VERSION").write_text("1\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "one"], check=True, env=env)
    first = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True, env=env,
                           capture_output=True, text=True).stdout.strip()
    (work / "VERSION").write_text("2\n")
    subprocess.run(["git", "-C", str(work), "commit", "-qam", "two"], check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, env=env)
    url = bare.as_uri()
    got = place_inputs(repo, [
        {"name": "head", "path": "/src", "git": {"repo": url, "depth": 1}},
        {"name": "old", "path": "/old", "git": {"repo": url, "revision": first}},
        {"name": "branch", "path": "/b", "git": {"repo": url, "revision": "main", "depth": 1}},
    ], {"head": tmp_path / "head", "old": tmp_path / "old", "branch": tmp_path / "branch"})
    assert (tmp_path / "head" / "VERSION").read_text() == "2\n"
    assert (tmp_path / "old" / "VERSION").read_text() == "1\n"
    assert (tmp_path / "branch" / "VERSION").read_text() == "2\n"
    assert got["old"].digest == f"git:{first}"
    with pytest.raises(NotFoundError, match="revision"):
        place_inputs(repo, [{"name": "x", "path": "/x",
                             "git": {"repo": url, "revision": "no-such-rev"}}],
                     {"x": tmp_path / "x"})
    with pytest.raises(UserError, match="scheme"):
        place_inputs(repo, [{"name": "x", "path": "/x", "git": {"repo": "ext::sh -c id"}}],
                     {"x": tmp_path / "x2"})


def test_gc_removes_only_dead_runs(tmp_path, repo):
    step = _outputs(tmp_path)
    live, dead = str(uuid.uuid4()), str(uuid.uuid4())
    for uid in (live, dead):
        repo.save(step / "dir", name="d", workflow_uid=uid, node_id="n1")
        repo.save(step / "hello.txt", name="h", workflow_uid=uid, node_id="n2",
                  archive={"none": {}})
    repo.save(step / "hello.txt", name="k", key="user-key")
    dead_bytes = sum(s for _, s in repo.list(dead))
    removed, freed = gc(repo, [live])
    assert (removed, freed) == (2, dead_bytes)
    assert not repo.exists(dead) and repo.exists(live) and repo.exists("user-key")
    assert len(repo.list(live)) == 2
    assert gc(repo, [live]) == (0, 0)


def test_killed_local_writer_leaves_no_partial_object(tmp_path, chute_home, repo):
    """L-3 on the local repository: SIGKILL mid-write, the key is absent or complete."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20) * 48)
    script = textwrap.dedent(f"""
        import sys
        from chute.artifacts import ArtifactRepository
        repo = ArtifactRepository.from_settings()
        print("go", flush=True)
        repo.put_file({str(big)!r}, "run/obj")
    """)
    for trial in range(3):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             env={**os.environ, "CHUTE_HOME": str(chute_home)})
        p.stdout.readline()
        __import__("time").sleep(0.02 * trial)
        p.kill()
        p.wait()
        if repo.exists("run/obj"):
            assert repo.size("run/obj") == big.stat().st_size
        assert [k for k, _ in repo.list()] in ([], ["run/obj"])
        repo.delete("run") if repo.exists("run") else None


def test_config_file_selects_the_repository(chute_home, tmp_path):
    (chute_home / "artifact-repository.yaml").write_text(f"local:\n  path: {tmp_path}/elsewhere\n")
    assert ArtifactRepository.from_settings().uri.endswith("/elsewhere")
    (chute_home / "artifact-repository.yaml").write_text("gcs:\n  bucket: b\n")
    with pytest.raises(UserError, match="gcs"):
        ArtifactRepository.from_settings()
    (chute_home / "artifact-repository.yaml").write_text("s3:\n  bucket: b\n  roleARN: x\n")
    with pytest.raises(UnsupportedError, match="roleARN"):
        ArtifactRepository.from_settings()


def test_output_symlinks_never_export_host_files(tmp_path, repo):
    root = tmp_path / "step-root"
    (root / "tmp").mkdir(parents=True)
    host_secret = tmp_path / "id_rsa"
    host_secret.write_text("PRIVATE")
    os.symlink(host_secret, root / "tmp" / "leak")
    (root / "tmp" / "model.pkl").write_text("model")
    os.symlink(root / "tmp" / "model.pkl", root / "tmp" / "latest")
    for archive in (None, {"none": {}}):
        with pytest.raises(UserError, match="symlink"):
            save_outputs(repo, [{"name": "o", "path": "/tmp/leak", "archive": archive}],
                         {"/tmp/leak": root / "tmp" / "leak"}, workflow_uid="u", node_id="n",
                         root=root)
    assert all(b"PRIVATE" not in (Path(repo.uri[7:]) / k).read_bytes() for k, _ in repo.list())
    recs = save_outputs(repo, [{"name": "m", "path": "/tmp/latest", "archive": {"none": {}}}],
                        {"/tmp/latest": root / "tmp" / "latest"}, workflow_uid="u",
                        node_id="n", root=root)
    repo.load(recs["m"], tmp_path / "m")
    assert (tmp_path / "m").read_text() == "model"


def test_a_symlink_is_never_placed_as_the_input_itself(tmp_path, repo):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ti = tarfile.TarInfo("only-link")
        ti.type, ti.linkname = tarfile.SYMTYPE, "sibling"
        tar.addfile(ti)
        d = tarfile.TarInfo("pkg/link")
        d.type, d.linkname = tarfile.SYMTYPE, "x"
        tar.addfile(d)
    repo.put_stream(io.BytesIO(buf.getvalue()), "ext/links.tgz")
    with pytest.raises(UserError, match="symlink"):
        repo.load("ext/links.tgz", tmp_path / "a", sub_path="pkg/link")
    buf2 = io.BytesIO()
    with tarfile.open(fileobj=buf2, mode="w:gz") as tar:
        ti = tarfile.TarInfo("only-link")
        ti.type, ti.linkname = tarfile.SYMTYPE, "sibling"
        tar.addfile(ti)
    repo.put_stream(io.BytesIO(buf2.getvalue()), "ext/one.tgz")
    with pytest.raises(UserError, match="symlink"):
        repo.load("ext/one.tgz", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".chute")] == []
