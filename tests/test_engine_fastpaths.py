"""The chain step's fast paths give what the general code gives: a plain task's call,
a step's launch paths, a reused worker's request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chute.engine.calls import expand, plain_call
from chute.engine.launches import child_path
from chute.executors.base import LaunchSpec
from chute.executors.worker_proc import Requests

CTX = {"inputs.parameters.x": "7", "workflow.name": "wf"}


@pytest.mark.parametrize("call", [
    {"name": "b", "template": "t", "dependencies": ["a"]},  # a chain's task: no tag
    {"name": "b", "template": "t", "arguments": {"parameters": [
        {"name": "p", "value": "{{inputs.parameters.x}}"}]}},
    {"name": "b", "template": "t", "arguments": {"parameters": [  # a lone output ref
        {"name": "p", "value": "{{tasks.a.outputs.parameters.o}}"}]}},
    {"name": "b", "template": "t", "when": "{{inputs.parameters.x}} > 1",
     "hooks": {"exit": {"template": "{{workflow.name}}"}}},
    {"name": "b", "inline": {"container": {"image": "x", "args": ["{{inputs.parameters.x}}"]}}},
    {"name": "{{workflow.name}}", "template": "t"},  # a key with a tag
])
def test_plain_call_is_what_expand_yields(call):
    got = plain_call(call, CTX)
    assert got == next(expand(call, CTX))[1]
    assert got is not call  # a copy: the spec's own dict is never handed out
    assert plain_call(call, CTX) == got  # remembered per call: the same again


@pytest.mark.parametrize("name", ["wf-123-0", "x.log", "a b", "a/b", ".", "..", ""])
def test_child_path_is_parent_slash_name(name):
    parent = Path("/tmp/steps/run-1")
    made, want = child_path(parent, name), parent / name
    assert made == want and str(made) == str(want) and hash(made) == hash(want)
    assert made.parts == want.parts and made.name == want.name and made.parent == want.parent


def _spec(i: int, **kw) -> LaunchSpec:
    return LaunchSpec(workflow_uid="u-1", node_id=f'n"{i}', attempt=i,
                      step_dir=Path(f"/s/u-1/n{i}-{i}"), log_path=Path(f"/l/u-1/n{i}.log"),
                      script_source="print(1)", **kw)


@pytest.mark.parametrize("kw", [
    {"argv": ["python3"]},
    {"argv": ["python3"], "env": {"A": "é"}, "output_paths": ["/tmp/o"], "working_dir": "/w",
     "volume_mounts": ["/v"], "deadline": 12.5},
    {"argv": ["python3"], "input_files": {"/tmp/i": "/h/i"}, "private_paths": ["/tmp/p"],
     "secret_values": ["s3cr3t"], "deadline": float("inf")},
])
def test_request_spec_is_the_launch_spec(kw):
    """The request's spec is the LaunchSpec's JSON less the script, for every attempt,
    whatever part of it was encoded once per template (and a changed value is not)."""
    req = Requests()
    for i in range(3):
        spec = _spec(i, **kw)
        want = spec.to_json()
        del want["script_source"]
        assert json.loads(req.spec_json(spec)) == want
    changed = _spec(9, **{**kw, "argv": ["python3", "-u"]})  # same template, one change
    assert json.loads(req.spec_json(changed))["argv"] == ["python3", "-u"]
