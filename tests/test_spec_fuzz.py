"""V-2 of RELIABILITY.md: hypothesis-generated specs — random structural mutations of valid
Argo examples, random JSON structures and random YAML-ish text. Loading and validating
(plain and for the local runtime) either succeeds or raises SpecError; nothing else
escapes, and no spec takes more than a second.

CI runs about 2,000 examples in total (derandomized, so a run is reproducible); the heavy
variant (CHUTE_HEAVY=1) runs many more with fresh randomness.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chute.errors import SpecError
from chute.spec.loader import load_documents, load_file, to_dict
from chute.spec.validate import template_index, validate_all
from tests.conftest import ARGO_DIR

SEEDS = ["hello-world.yaml", "dag-diamond.yaml", "steps.yaml", "loops.yaml",
         "coinflip.yaml", "dag-enhanced-depends.yaml", "exit-handlers.yaml",
         "output-parameter.yaml", "parameter-aggregation-dag.yaml", "artifact-passing.yaml",
         "retry-backoff.yaml", "cron-workflow.yaml", "k8s-jobs.yaml", "volumes-pvc.yaml",
         "workflow-template/templates.yaml", "dag-inline-workflow.yaml",
         "conditional-parameters.yaml", "exit-handler-step-level.yaml",
         "expression-tag-template-workflow.yaml", "container-set-template/graph-workflow.yaml"]
LIMIT_SECONDS = 1.0

CI = settings(deadline=timedelta(seconds=LIMIT_SECONDS), derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
HEAVY = settings(CI, derandomize=False)


def _seed_docs() -> list[dict[str, Any]]:
    docs = []
    for name in SEEDS:
        docs.extend(to_dict(r) for r in load_file(ARGO_DIR / "examples" / name))
    return docs


SEED_DOCS = _seed_docs() if (ARGO_DIR / "examples").is_dir() else []
LIBRARY = template_index(load_documents(json.dumps(SEED_DOCS))) if SEED_DOCS else {}

scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=25)
# Strings that look like what the validator parses: tags, expressions, names, conditions.
fragments = st.sampled_from([
    "{{", "}}", "{{=", "inputs.parameters.", "outputs.result", "steps.", "tasks.", "item",
    "workflow.parameters.", "workflow.name", ".", "=", "==", "&&", "||", "!", "(", ")",
    "a", "b", "main", "echo", ".Succeeded", ".Failed", "'", '"', " ", "-", "1", "\u200b",
    "\u202e", "é", "e\u0301", "\x00", "\n", "*", "#", "$",
])
spec_strings = st.lists(fragments, max_size=12).map("".join)
yamlish = st.lists(st.sampled_from([
    "a:", "b: ", " ", "  ", "\n", "- ", "&a ", "*a", "&b [*a, *a]", "[", "]", "{", "}", ",",
    "!!str ", "!!binary ", "!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ", "!!int ",
    "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!merge ", "!!python/object:os.system ",
    "<<: *a", "<<: [*a, *b]", "---\n",
    "...\n", "'", '"', "\t", "? ", "kind: Workflow\n", "apiVersion: argoproj.io/v1alpha1\n",
    "metadata: {name: x}\n", "spec:\n", "  templates:\n", "  - name: main\n",
    "    container: {image: busybox}\n", "  entrypoint: main\n", "%YAML 1.1\n", "@", "|",
    ">", "1e999", "0x1F", "~", "null", "\ufeff", "\x85", "\udcff",
]), max_size=40).map("".join)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _mutate(data: st.DataObject, doc: Any) -> Any:
    """Apply one random structural mutation somewhere in ``doc`` (a copy is changed)."""
    paths = _paths(doc)
    path = data.draw(st.sampled_from(paths))
    if not path:
        return data.draw(json_values)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    op = data.draw(st.sampled_from(["delete", "replace", "string", "rename", "duplicate",
                                    "number", "self-reference"]))
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = data.draw(json_values)
    elif op == "string":
        parent[key] = data.draw(spec_strings)
    elif op == "rename" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12) | spec_strings)] = parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[key])))
    elif op == "number":
        parent[key] = data.draw(st.sampled_from([-1, 0, 2**63, -2**63, 10**30, 1.5, True]))
    elif op == "self-reference":
        # names drawn from the document make cycles, duplicates and dangling references
        names = [v for p in paths for v in [_get(doc, p)] if isinstance(v, str)][:50]
        parent[key] = data.draw(st.sampled_from(names or ["main"])) if data.draw(
            st.booleans()) else [data.draw(st.sampled_from(names or ["main"]))]
    return doc


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _load_and_validate(text: str | bytes) -> float:
    """Seconds of this thread's CPU that loading and validating ``text`` took."""
    start = time.thread_time()
    try:
        resources = load_documents(text)
        validate_all(resources, templates=LIBRARY)
        validate_all(resources, runtime="local", templates=LIBRARY)
    except SpecError:
        pass
    return time.thread_time() - start


def check_only_spec_errors(text: str | bytes) -> None:
    """Load and validate; anything but SpecError (or a slow spec) fails the test.

    The budget is this thread's CPU time, so a busy machine does not fail the test, and
    an over-budget spec is timed once more (a garbage-collection pause is not the spec's
    cost; a slow spec is slow twice). A wall-clock hang is caught by hypothesis' deadline,
    which also re-runs a slow example before failing."""
    elapsed = _load_and_validate(text)
    if elapsed >= LIMIT_SECONDS:
        elapsed = min(elapsed, _load_and_validate(text))
    assert elapsed < LIMIT_SECONDS, f"spec took {elapsed:.2f} s of CPU"


def _serialise(data: st.DataObject, value: Any) -> str:
    if data.draw(st.booleans()):
        return json.dumps(value)
    return yaml.safe_dump(value, allow_unicode=data.draw(st.booleans()))


def _mutations(data: st.DataObject) -> None:
    doc = json.loads(json.dumps(data.draw(st.sampled_from(SEED_DOCS))))
    for _ in range(data.draw(st.integers(1, 4))):
        doc = _mutate(data, doc)
    check_only_spec_errors(_serialise(data, doc))


@pytest.mark.skipif(not SEED_DOCS, reason="conformance data missing")
@settings(CI, max_examples=1200)
@given(st.data())
def test_mutated_examples_raise_only_spec_error(data):
    _mutations(data)


@settings(CI, max_examples=400)
@given(st.data(), json_values)
def test_random_structures_raise_only_spec_error(data, value):
    if data.draw(st.booleans()):  # often a plausible envelope around the random content
        value = {"apiVersion": "argoproj.io/v1alpha1",
                 "kind": data.draw(st.sampled_from(["Workflow", "WorkflowTemplate",
                                                    "ClusterWorkflowTemplate",
                                                    "CronWorkflow", "List"])),
                 "metadata": {"name": "x"}, "spec": value}
    check_only_spec_errors(_serialise(data, value))


@settings(CI, max_examples=400)
@given(yamlish | st.text(max_size=300) | st.binary(max_size=300))
def test_random_text_raises_only_spec_error(text):
    check_only_spec_errors(text)


@pytest.mark.heavy
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not SEED_DOCS, reason="conformance data missing")
@settings(HEAVY, max_examples=20_000)
@given(st.data())
def test_heavy_mutated_examples(data):
    _mutations(data)


@pytest.mark.heavy
@pytest.mark.timeout(3600)
@settings(HEAVY, max_examples=20_000)
@given(yamlish | st.text(max_size=2000) | st.binary(max_size=2000))
def test_heavy_random_text(text):
    check_only_spec_errors(text)
