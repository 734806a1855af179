"""The state machine's per-template shortcuts give what the long way gives: a launch
request made once per template and copied per pod, long texts looked for tags once, node
ids hashed on from the parent's part of the name."""

from __future__ import annotations

import yaml

from chute.engine import phases as P
from chute.engine.nodes import fnv1a_32, node_id
from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome, launch_request
from chute.engine.state import RunState
from chute.engine.vars import LONG_TEXT, has_tags, substitute


def _run(spec: str, name: str = "lc"):
    """Run a workflow to its end; the state and, per launch, (request, request built the
    long way from the same template and variables)."""
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
           "metadata": {"name": name}, "spec": yaml.safe_load(spec)}
    st = RunState(build_plan(doc, uid="uid-lc", created_at=1000.0), now=1000.0)
    st.start()
    now, pairs = 1000.0, []
    while not st.done:
        d = st.drain()
        assert d.launches, "the run stalled"
        for req in d.launches:
            tmpl, ctx = st.pods.templates[req.node_id][0], st.pods.ctx(st, req.node_id)
            node = st.nodes[req.node_id]
            pairs.append((req, launch_request("uid-lc", node.id, node.attempt, tmpl, ctx)))
            st.mark_running(req.node_id, f"/steps/{req.node_id}", now)
        for req in d.launches:
            now += 0.001
            st.pod_finished(req.node_id, PodOutcome(P.SUCCEEDED, 0, result="r\n", files={
                path: "v" for path in req.output_paths}), now)
    return st, pairs


SOURCE = "print('a long script')\n" * (LONG_TEXT // 10)


def test_a_template_without_tags_gives_each_pod_the_request_the_long_way_gives():
    st, pairs = _run(f"""
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {{name: a, template: s}}
    - {{name: b, template: s, dependencies: [a]}}
    - {{name: c, template: s, dependencies: [a]}}
- name: s
  activeDeadlineSeconds: 30
  script:
    image: python:3.11
    command: [python3]
    env: [{{name: K, value: v}}]
    source: {SOURCE!r}
  outputs:
    parameters: [{{name: o, valueFrom: {{path: /tmp/o}}}}]
""")
    assert st.phase == P.WF_SUCCEEDED and len(pairs) == 3
    for req, long_way in pairs:
        assert req == long_way  # every field, ids included
    ids = [req.node_id for req, _ in pairs]
    assert len(set(ids)) == 3
    first = pairs[0][0]
    assert first.script_source == SOURCE and first.env == {"K": "v"}
    assert first.output_paths == ["/tmp/o"] and first.deadline_seconds == 30


def test_tags_are_substituted_per_pod_in_short_and_long_fields():
    long_source = SOURCE + "print('{{inputs.parameters.x}}')\n"
    st, pairs = _run(f"""
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {{name: a, template: s, arguments: {{parameters: [{{name: x, value: one}}]}}}}
    - {{name: b, template: s, arguments: {{parameters: [{{name: x, value: two}}]}}}}
- name: s
  inputs: {{parameters: [{{name: x}}]}}
  script:
    image: python:3.11
    command: [python3]
    args: ["{{{{inputs.parameters.x}}}}", "{{{{pod.name}}}}"]
    source: {long_source!r}
""")
    assert st.phase == P.WF_SUCCEEDED
    by_x = {req.argv[1]: (req, long_way) for req, long_way in pairs}
    assert set(by_x) == {"one", "two"}
    for x, (req, long_way) in by_x.items():
        assert req == long_way
        assert req.argv[2] == req.node_id
        assert req.script_source.endswith(f"print('{x}')\n")
        assert len(req.script_source) > LONG_TEXT


def test_a_long_text_is_looked_for_tags_and_substituted_like_a_short_one():
    ctx = {"a": "A"}
    plain = "x" * (LONG_TEXT + 10)
    assert substitute(plain, ctx) is plain
    tagged = plain + "{{a}}"
    assert substitute(tagged, ctx) == plain + "A"
    assert substitute(tagged, ctx) == plain + "A"  # remembered: still substituted
    assert not has_tags({"k": [plain, 1, None]})
    assert has_tags({"k": [plain, {"{{a}}": 1}]}) and has_tags([tagged])


def test_node_ids_hash_the_whole_name():
    names = ["w.a", "w.a.b", "w.a.b(0:x)", "w.a.b(0:x).c.hooks.running", "w.né.ü(1:é)",
             "w", "w.", "nodots", ".lead"]
    for name in names:
        expect = "w" if name == "w" else f"w-{fnv1a_32(name.encode())}"
        assert node_id("w", name) == expect, name
    # the FNV-1a reference values for 32 bits ("" and "a")
    assert fnv1a_32(b"") == 0x811C9DC5 and fnv1a_32(b"a") == 0xE40C292C


def test_a_call_is_expanded_as_a_full_substitution_would_and_left_as_it_was():
    import copy
    import json
    from collections import ChainMap

    from chute.engine.calls import expand
    from chute.engine.loops import make_item
    from chute.engine.vars import substitute_all

    ctx = {"inputs.parameters.p": "P", "workflow.name": "w"}
    calls = [
        {"name": "a", "template": "t", "dependencies": ["x"],
         "arguments": {"parameters": [{"name": "q", "value": "fixed"}]}},
        {"name": "b", "template": "t",
         "arguments": {"parameters": [{"name": "q", "value": "{{inputs.parameters.p}}"}]}},
        {"name": "c", "template": "{{workflow.name}}-t", "withItems": [1, {"k": "v"}],
         "arguments": {"parameters": [{"name": "q", "value": "{{item}}/{{workflow.name}}"}]}},
        {"name": "d", "template": "t", "withParam": '["x", "y"]',
         "arguments": {"{{workflow.name}}": {"parameters": []}}},  # a tag in a key
    ]
    for call in calls:
        before = copy.deepcopy(call)
        for _ in range(2):  # the second time from what was remembered
            got = list(expand(call, ctx))
            assert call == before  # the spec's call is never changed
            if not any(call.get(k) for k in ("withItems", "withParam")):
                base = {k: v for k, v in call.items()}
                assert got == [("", substitute_all(base, ctx))]
            else:  # each item: the long way, a full substitution with the item's vars
                items = call.get("withItems") or json.loads(call["withParam"])
                base = {k: v for k, v in call.items() if k not in ("withItems", "withParam")}
                assert got == [
                    (f"({i}:{make_item(i, v).label})",
                     substitute_all(base, ChainMap(make_item(i, v).vars, ctx)))
                    for i, v in enumerate(items)]
                assert got[0][1]["arguments"] != base["arguments"]  # substituted
        got[0][1]["arguments"] = "changed"  # a substituted call is the caller's to change
        assert call == before
