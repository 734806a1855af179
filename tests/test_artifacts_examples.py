"""Argo's own artifact examples, driven through the artifact library as the engine will.

Each test loads the example with the spec loader, writes what the producing step would
write into a fake step root, saves the outputs, then places the consuming step's inputs
(argument fields such as ``from`` and ``subPath`` merged into the template's input, as
the engine does) and checks the files the consumer would read.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from chute.artifacts import ArtifactRepository, place_inputs, save_outputs
from chute.secrets import SecretStore
from chute.spec.loader import load_documents, load_file

pytest_plugins = ["tests.fixtures.s3"]


def _templates(wf) -> dict:
    return {t.name: t for t in wf.spec.templates}


def _merge(input_art, arg) -> dict:
    """A template input with the step's argument fields laid over it."""
    merged = input_art.model_dump(by_alias=True, exclude_none=True)
    if arg is not None:
        merged.update({k: v for k, v in arg.model_dump(by_alias=True, exclude_none=True).items()
                       if k != "name"})
    return merged


def _host(root: Path, step_path: str) -> Path:
    return root / step_path.lstrip("/")


@pytest.fixture
def repo(chute_home):
    return ArtifactRepository.from_settings()


def test_artifact_disable_archive(argo_dir, tmp_path, repo):
    wf = load_file(argo_dir / "examples" / "artifact-disable-archive.yaml")[0]
    t = _templates(wf)
    producer = tmp_path / "producer"
    (producer / "etc" / "ssl").mkdir(parents=True)
    (producer / "etc" / "hostname").write_text("box\n")
    (producer / "etc" / "ssl" / "openssl.cnf").write_text("[req]\n")
    (producer / "tmp").mkdir()
    for name in ("hello_world.txt", "hello_world_nc.txt"):
        (producer / "tmp" / name).write_text("hello world\n")
    outs = t["hello-world-to-file"].outputs.artifacts
    recs = save_outputs(repo, outs, {a.path: _host(producer, a.path) for a in outs},
                        workflow_uid=str(uuid.uuid4()), node_id="generate")
    assert [recs[n].archive for n in ("etc", "hello-txt", "hello-txt-nc")] == [
        "none", "none", "tgz"]
    consumer = tmp_path / "consumer"
    ins = t["print-message-from-files"].inputs.artifacts
    place_inputs(repo, ins, {a.name: _host(consumer, a.path) for a in ins}, records=recs)
    # the consumer runs: cat /tmp/hello.txt && cat /tmp/hello_nc.txt && cd /tmp/etc && find .
    assert (consumer / "tmp/hello.txt").read_text() == "hello world\n"
    assert (consumer / "tmp/hello_nc.txt").read_text() == "hello world\n"
    found = sorted(p.relative_to(consumer / "tmp/etc").as_posix()
                   for p in (consumer / "tmp/etc").rglob("*"))
    assert found == ["hostname", "ssl", "ssl/openssl.cnf"]


def test_artifact_passing_subpath(argo_dir, tmp_path, repo):
    wf = load_file(argo_dir / "examples" / "artifact-passing-subpath.yaml")[0]
    t = _templates(wf)
    producer = tmp_path / "producer"
    (producer / "tmp").mkdir(parents=True)
    (producer / "tmp" / "hello_world.txt").write_text("hello world\n")
    outs = t["hello-world-to-file"].outputs.artifacts
    recs = save_outputs(repo, outs, {a.path: _host(producer, a.path) for a in outs},
                        workflow_uid=str(uuid.uuid4()), node_id="generate")
    steps = {s.name: s for group in t["artifact-example"].steps for s in group}
    for step, template in (("list-artifact", "print-message-dir"),
                           ("consume-artifact", "print-message-from-file")):
        args = {a.name: a for a in steps[step].arguments.artifacts}
        ins = [_merge(a, args.get(a.name)) for a in t[template].inputs.artifacts]
        root = tmp_path / step
        place_inputs(repo, ins, {a["name"]: _host(root, a["path"]) for a in ins},
                     records={"message": recs["hello-art"]})
    assert (tmp_path / "list-artifact/tmp/message/hello_world.txt").read_text() == "hello world\n"
    assert (tmp_path / "consume-artifact/tmp/message").read_text() == "hello world\n"


def test_key_only_artifact(argo_dir, tmp_path, repo):
    wf = load_file(argo_dir / "examples" / "key-only-artifact.yaml")[0]
    t = _templates(wf)
    producer = tmp_path / "producer"
    (producer / "mnt").mkdir(parents=True)
    (producer / "mnt" / "file").write_text("hello\n")
    outs = t["generate"].outputs.artifacts
    recs = save_outputs(repo, outs, {a.path: _host(producer, a.path) for a in outs},
                        workflow_uid=str(uuid.uuid4()), node_id="generate")
    assert recs["file"].key == "my-file"
    ins = t["consume"].inputs.artifacts
    place_inputs(repo, ins, {a.name: _host(tmp_path / "c", a.path) for a in ins})
    assert (tmp_path / "c/tmp/file").read_text() == "hello\n"


def test_input_artifact_raw(argo_dir, tmp_path, repo):
    wf = load_file(argo_dir / "examples" / "input-artifact-raw.yaml")[0]
    tmpl = next(t for t in wf.spec.templates if t.inputs and t.inputs.artifacts)
    ins = tmpl.inputs.artifacts
    place_inputs(repo, ins, {a.name: _host(tmp_path, a.path) for a in ins})
    art = ins[0]
    assert _host(tmp_path, art.path).read_text() == art.raw.data


@pytest.mark.s3
def test_input_artifact_s3_with_its_kubernetes_secret_names(argo_dir, tmp_path, repo, s3):
    """The example's secret references resolve from `chute secret create` exactly as
    `kubectl create secret generic my-s3-credentials ...` would make them on a cluster."""
    SecretStore().create("my-s3-credentials", {"accessKey": s3.access_key,
                                               "secretKey": s3.secret_key})
    doc = yaml.safe_load((argo_dir / "examples" / "input-artifact-s3.yaml").read_text())
    block = doc["spec"]["templates"][0]["inputs"]["artifacts"][0]["s3"]
    block.update(endpoint=s3.endpoint, bucket=s3.bucket, insecure=True, region="us-east-1")
    wf = load_documents(yaml.safe_dump(doc))[0]
    s3.client().put_object(Bucket=s3.bucket, Key=block["key"], Body=b"from the bucket\n")
    ins = wf.spec.templates[0].inputs.artifacts
    got = place_inputs(repo, ins, {a.name: _host(tmp_path, a.path) for a in ins})
    assert (tmp_path / "my-artifact").read_text() == "from the bucket\n"
    assert got["my-art"].location == f"s3://{s3.bucket}/{block['key']}"
