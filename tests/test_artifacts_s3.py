"""The S3 artifact repository against a real S3 HTTP endpoint (moto server)."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from chute.artifacts import ArtifactRepository, gc, place_inputs, save_outputs
from chute.errors import NotFoundError, UserError
from chute.secrets import SecretStore

pytest_plugins = ["tests.fixtures.s3"]
pytestmark = pytest.mark.s3


def _config(s3, **extra) -> dict:
    block = {"endpoint": s3.endpoint, "bucket": s3.bucket, "insecure": True,
             "region": "us-east-1", "keyPrefix": "chute",
             "accessKeySecret": {"name": "s3-creds", "key": "accessKey"},
             "secretKeySecret": {"name": "s3-creds", "key": "secretKey"}}
    block.update(extra)
    return {"s3": block}


@pytest.fixture
def store(chute_home, s3) -> SecretStore:
    st = SecretStore()
    st.create("s3-creds", {"accessKey": s3.access_key, "secretKey": s3.secret_key})
    return st


@pytest.fixture
def repo(chute_home, s3, store) -> ArtifactRepository:
    import yaml

    (chute_home / "artifact-repository.yaml").write_text(yaml.safe_dump(_config(s3)))
    return ArtifactRepository.from_settings(secrets=store)


def _step(tmp_path: Path) -> Path:
    step = tmp_path / "step"
    (step / "dir" / "sub").mkdir(parents=True)
    (step / "dir" / "a.txt").write_text("alpha\n")
    (step / "dir" / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (step / "hello.txt").write_text("hello world\n")
    return step


def test_config_file_gives_an_s3_repository_with_credentials_from_secrets(repo, s3):
    assert repo.uri == f"s3://{s3.bucket}/chute"
    # the config holds references only; the value lives in the secret store
    assert repo.backend.cfg.secret_key_ref == {"name": "s3-creds", "key": "secretKey"}
    assert s3.secret_key not in repr(repo.backend.cfg)


def test_upload_download_directories_and_archives(tmp_path, repo, s3):
    step = _step(tmp_path)
    uid = str(uuid.uuid4())
    specs = [{"name": "tree", "path": "/d"},
             {"name": "tree-none", "path": "/d", "archive": {"none": {}}},
             {"name": "hello", "path": "/h", "archive": {"none": {}}},
             {"name": "hello-zip", "path": "/h", "archive": {"zip": {}}}]
    recs = save_outputs(repo, specs, {"/d": step / "dir", "/h": step / "hello.txt"},
                        workflow_uid=uid, node_id="n-1")
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert f"chute/{uid}/n-1/tree.tgz" in keys
    assert f"chute/{uid}/n-1/tree-none/sub/b.bin" in keys
    assert f"chute/{uid}/n-1/hello/hello.txt" in keys
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"chute/{uid}/n-1/hello/hello.txt")
    assert body["Body"].read() == b"hello world\n"
    for r in recs.values():
        assert repo.size(r.key) == r.size
    dest = tmp_path / "in"
    place_inputs(repo, [{"name": n, "path": "/x", "from": "y"} for n in recs],
                 {n: dest / n for n in recs}, records=recs)
    for n in ("tree", "tree-none"):
        assert (dest / n / "sub" / "b.bin").read_bytes() == (step / "dir/sub/b.bin").read_bytes()
    assert (dest / "hello").read_text() == (dest / "hello-zip").read_text() == "hello world\n"
    assert gc(repo, []) == (5, sum(r.size for r in recs.values()))
    assert repo.list() == []


def test_s3_input_artifact_with_its_own_location_and_secret_refs(tmp_path, s3, store, chute_home):
    s3.client().put_object(Bucket=s3.bucket, Key="path/in/bucket.txt", Body=b"data\n")
    art = {"name": "my-art", "path": "/my-artifact",
           "s3": {"endpoint": s3.endpoint, "bucket": s3.bucket, "insecure": True,
                  "key": "path/in/bucket.txt", "region": "us-east-1",
                  "accessKeySecret": {"name": "s3-creds", "key": "accessKey"},
                  "secretKeySecret": {"name": "s3-creds", "key": "secretKey"}}}
    local = ArtifactRepository.local(tmp_path / "store")
    got = place_inputs(local, [art], {"my-art": tmp_path / "a"}, secrets=store)
    assert (tmp_path / "a").read_text() == "data\n"
    assert got["my-art"].location == f"s3://{s3.bucket}/path/in/bucket.txt"
    art["s3"]["key"] = "path/missing"
    with pytest.raises(NotFoundError, match=f"s3://{s3.bucket}/path/missing"):
        place_inputs(local, [art], {"my-art": tmp_path / "b"}, secrets=store)
    art["optional"] = True
    assert place_inputs(local, [art], {"my-art": tmp_path / "c"}, secrets=store) == {
        "my-art": None}


def test_credentials_from_the_environment(tmp_path, s3, monkeypatch, chute_home):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    cfg = _config(s3)
    del cfg["s3"]["accessKeySecret"], cfg["s3"]["secretKeySecret"]
    repo = ArtifactRepository.from_argo(cfg)
    _digest, size = repo.put_stream(__import__("io").BytesIO(b"abc"), "k")
    assert size == 3 and repo.exists("k") and not repo.exists("nope")


def test_missing_key_error_names_the_key(tmp_path, repo, s3):
    with pytest.raises(NotFoundError) as err:
        repo.get_file("runs/none/here.tgz", tmp_path / "x")
    assert f"s3://{s3.bucket}/chute/runs/none/here.tgz" in str(err.value)
    with pytest.raises(NotFoundError, match="runs/none"):
        repo.load("runs/none", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_wrong_credentials_fail_clearly_without_the_secret(tmp_path, s3, chute_home, caplog):
    canary = secrets.token_hex(16)  # the wrong secret key, grepped for everywhere
    forms = [canary, base64.b64encode(canary.encode()).decode(), quote(canary),
             canary.encode().hex()]
    st = SecretStore()
    st.create("s3-creds", {"accessKey": s3.access_key, "secretKey": canary})
    caplog.set_level(logging.DEBUG)
    repo = ArtifactRepository.from_argo(_config(s3), secrets=st)
    (tmp_path / "f").write_text("x")
    messages = []
    for call in (lambda: repo.put_file(tmp_path / "f", "k"),
                 lambda: repo.get_file("k", tmp_path / "g"),
                 lambda: repo.exists("k"),
                 lambda: repo.list("")):
        with pytest.raises(UserError) as err:
            call()
        messages.append(str(err.value))
    assert all("access denied" in m or "S3 error" in m for m in messages), messages
    assert all(s3.bucket in m for m in messages)
    sinks = "\n".join(messages) + "\n" + caplog.text + "\n" + "\n".join(
        repr(r.args) for r in caplog.records)
    for form in forms:
        assert form not in sinks


def test_unreachable_or_metadata_endpoints_are_refused(chute_home, store):
    for ep in ("169.254.169.254", "[fd00:ec2::254]:80", "metadata.google.internal"):
        with pytest.raises(UserError, match="metadata|link-local"):
            ArtifactRepository.from_argo({"s3": {"endpoint": ep, "bucket": "bkt"}})


UPLOADER = textwrap.dedent("""
    import sys
    from chute.artifacts import ArtifactRepository
    from chute.secrets import SecretStore
    import chute.artifacts.s3 as s3mod
    s3mod.PART_SIZE = 5 * 1024 * 1024  # many parts: the kill lands mid-upload
    cfg = {cfg!r}
    repo = ArtifactRepository.from_argo(cfg, secrets=SecretStore())
    repo.exists("warm-up")  # the S3 client is built lazily: build it before the clock starts
    print("go", flush=True)
    repo.put_file({src!r}, "atomic/obj")
    print("done", flush=True)
""")


def _kill_trials(tmp_path, s3, chute_home, trials: int) -> dict:
    """L-3: kill the uploading process at random points; readers see nothing or all."""
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        f.writelines(os.urandom(4 << 20) for _ in range(6))
    size = src.stat().st_size
    script = UPLOADER.format(cfg=_config(s3), src=str(src))
    outcomes = {"absent": 0, "complete": 0, "mid_upload": 0}
    pending = 0  # incomplete multipart uploads left so far
    client = s3.client()
    for trial in range(trials):
        client.delete_object(Bucket=s3.bucket, Key="chute/atomic/obj")
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             env={**os.environ, "CHUTE_HOME": str(chute_home)})
        assert p.stdout.readline().strip() == b"go"
        if trial % 4 == 3:
            p.stdout.readline()  # let this one finish: the reader must see it whole
        else:
            time.sleep(0.1 + (trial % 10) * 0.12)
        p.kill()
        p.wait()
        uploads = len(client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads") or [])
        outcomes["mid_upload"] += uploads > pending  # the kill landed after parts were sent
        pending = uploads
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix="chute/atomic/")
        objs = listed.get("Contents", [])
        if not objs:
            outcomes["absent"] += 1
            continue
        assert [o["Key"] for o in objs] == ["chute/atomic/obj"]
        body = client.get_object(Bucket=s3.bucket, Key="chute/atomic/obj")["Body"].read()
        assert len(body) == size and body == src.read_bytes(), "partial object visible"
        outcomes["complete"] += 1
    print(f"L-3 S3 kill trials: {outcomes} (0 partial)")
    return outcomes


def test_killed_upload_never_leaves_a_partial_object(tmp_path, s3, store, repo, chute_home):
    outcomes = _kill_trials(tmp_path, s3, chute_home, trials=4)
    assert outcomes["absent"] + outcomes["complete"] == 4
    assert outcomes["mid_upload"] >= 1  # a kill did land after parts were uploaded
    assert outcomes["complete"] >= 1
    # the killed writers' incomplete uploads are invisible, and GC aborts them
    client = s3.client()
    assert client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")
    gc(repo, [], stale_after=0)  # (moto dates every upload 2010: age is not testable here)
    assert not client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


@pytest.mark.heavy
def test_killed_upload_never_leaves_a_partial_object_50_trials(tmp_path, s3, store, chute_home):
    outcomes = _kill_trials(tmp_path, s3, chute_home, trials=50)
    assert outcomes["absent"] + outcomes["complete"] == 50
    assert outcomes["mid_upload"] >= 10 and outcomes["complete"] >= 12


def test_key_only_artifacts_in_the_default_s3_repository(tmp_path, repo):
    step = _step(tmp_path)
    recs = save_outputs(repo, [
        {"name": "parts", "path": "/d", "archive": {"none": {}}, "s3": {"key": "wf-1/parts/"}},
        {"name": "file", "path": "/h", "s3": {"key": "my-file"}}],
        {"/d": step / "dir", "/h": step / "hello.txt"}, workflow_uid="u", node_id="n")
    assert recs["parts"].key == "wf-1/parts" and recs["file"].archive == "tgz"
    dest = tmp_path / "in"
    got = place_inputs(repo, [
        {"name": "dir", "path": "/a", "s3": {"key": "wf-1/parts"}},
        {"name": "one", "path": "/b", "s3": {"key": "wf-1/parts/a.txt"}},
        {"name": "file", "path": "/c", "s3": {"key": "my-file"}}],
        {n: dest / n for n in ("dir", "one", "file")})
    assert (dest / "dir" / "sub" / "b.bin").read_bytes() == (step / "dir/sub/b.bin").read_bytes()
    assert (dest / "one").read_text() == "alpha\n"
    assert (dest / "file").read_text() == "hello world\n"  # the tgz was unpacked
    assert got["file"].location.endswith("/chute/my-file")
