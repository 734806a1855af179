"""The broken-spec corpus (tests/corpus/broken): every file is refused with a SpecError that
names the expected place and problem, and ``chute lint`` exits 2 on it without a
traceback. Huge inputs are generated here rather than committed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chute.cli.app import main
from chute.errors import SpecError
from chute.spec.loader import load_file
from chute.spec.validate import validate_all
from tests.conftest import REPO

CORPUS = REPO / "tests" / "corpus" / "broken"

#: file -> (path of the issue, substring of its message). "" is a whole-file problem, None
#: any place.
EXPECTED: dict[str, tuple[str | None, str]] = {
    # typos in field names
    "typo-field-entrypoint.yaml": ("spec.entrypiont", "unknown field 'entrypiont' "
                                                      "(did you mean 'entrypoint'?)"),
    "typo-field-command.yaml": ("spec.templates[0].container.comand",
                                "unknown field 'comand' (did you mean 'command'?)"),
    "typo-template-kind.yaml": ("spec.templates[0].containr",
                                "unknown field 'containr' (did you mean 'container'?)"),
    "typo-dependencies.yaml": ("spec.templates[1].dag.tasks[1].dependecies",
                               "(did you mean 'dependencies'?)"),
    # cycles
    "cycle-self.yaml": ("spec.templates[1].dag.tasks[0]", "task 'a' depends on itself: a -> a"),
    "cycle-two.yaml": ("spec.templates[1].dag.tasks[0]", "dependency cycle: a -> b -> a"),
    "cycle-n.yaml": ("spec.templates[1].dag.tasks[0]",
                     "dependency cycle: a -> d -> c -> b -> a"),
    "cycle-depends.yaml": ("spec.templates[1].dag.tasks[0]",
                           "dependency cycle: a -> c -> b -> a"),
    # missing templates, tasks, parameters, artifacts
    "missing-entrypoint-template.yaml": ("spec.entrypoint", "unknown template 'ehco' "
                                                            "(did you mean 'echo'?)"),
    "missing-entrypoint.yaml": ("spec.entrypoint", "entrypoint is required"),
    "missing-step-template.yaml": ("spec.templates[1].steps[1][0].template",
                                   "unknown template 'eco' (did you mean 'echo'?)"),
    "missing-task-template.yaml": ("spec.templates[1].dag.tasks[0].template",
                                   "unknown template 'echoo'"),
    "missing-onexit-template.yaml": ("spec.onExit", "unknown template 'cleanup'"),
    "missing-dependency-task.yaml": ("spec.templates[2].dag.tasks[1].dependencies[0]",
                                     "unknown task 'trian' (did you mean 'train'?)"),
    "missing-depends-task.yaml": ("spec.templates[1].dag.tasks[1].depends",
                                  "unknown task 'fecth' in depends (did you mean 'fetch'?)"),
    "missing-input-parameter.yaml": ("spec.templates[0].container.command[1]",
                                     "template 'main' has no input parameter 'mesage' "
                                     "(did you mean 'message'?)"),
    "missing-workflow-parameter.yaml": ("spec.templates[0].container.command[1]",
                                        "the workflow has no argument 'learning_rate'"),
    "missing-step-ref.yaml": ("spec.templates[2].steps[1][0].arguments.parameters[0].value",
                              "unknown step 'generate'"),
    "missing-task-ref.yaml": ("spec.templates[2].dag.tasks[1].arguments.parameters[0].value",
                              "unknown task 'gne' (did you mean 'gen'?)"),
    "missing-output-parameter.yaml": (
        "spec.templates[2].steps[1][0].arguments.parameters[0].value",
        "step 'gen' has no 'outputs.parameters.output'"),
    "missing-input-artifact.yaml": ("spec.templates[0].container.command[1]",
                                    "no input artifact 'dataset' (did you mean 'data'?)"),
    "missing-argument.yaml": ("spec.templates[1].steps[0][0].arguments",
                              "missing argument 'm'"),
    "missing-entrypoint-argument.yaml": ("spec.arguments.parameters",
                                         "missing argument 'message': the entrypoint 'main'"),
    "templateref-without-name.yaml": ("spec.templates[0].steps[0][0].templateRef.name",
                                      "the name of the WorkflowTemplate is required"),
    "step-refers-to-later-step.yaml": (
        "spec.templates[2].steps[0][0].arguments.parameters[0].value",
        "step 'gen' has not run yet here"),
    "item-outside-loop.yaml": ("spec.templates[1].steps[0][0].arguments.parameters[0].value",
                               "unknown variable {{item}}"),
    "argument-dependency-missing.yaml": (
        "spec.templates[2].dag.tasks[1].arguments.parameters[0]",
        "takes a value from task 'gen', which task 'use' does not depend on"),
    "dag-unknown-target.yaml": ("spec.templates[1].dag.target", "unknown target task 'b'"),
    # duplicate names and keys
    "duplicate-template-names.yaml": ("spec.templates[1].name",
                                      "duplicate template name 'echo'"),
    "duplicate-step-names.yaml": ("spec.templates[1].steps[0][1].name",
                                  "duplicate step name 'a'"),
    "duplicate-task-names.yaml": ("spec.templates[1].dag.tasks[1].name",
                                  "duplicate task name 'a'"),
    "duplicate-parameter-names.yaml": ("spec.arguments.parameters[1].name",
                                       "duplicate parameter name 'p'"),
    "duplicate-keys.yaml": ("line 12, column 3", "duplicate key 'entrypoint'"),
    "json-duplicate-key.json": ("", "invalid JSON: duplicate key 'kind'"),
    # wrong types and kinds
    "wrong-type-command-string.yaml": ("spec.templates[0].container.command",
                                       "valid list (got 'echo hello')"),
    "wrong-type-parallelism.yaml": ("spec.parallelism", "valid integer"),
    "wrong-type-templates-mapping.yaml": ("spec.templates", "valid list"),
    "wrong-type-steps-not-nested.yaml": ("spec.templates[1].steps[0]", "valid list"),
    "wrong-kind.yaml": ("kind", "not an Argo workflow resource (kind: 'Pod')"),
    "wrong-api-version.yaml": ("apiVersion", "expected 'argoproj.io/v1alpha1'"),
    "not-a-mapping.yaml": ("", "not an Argo workflow resource: expected a mapping"),
    "no-template-kind.yaml": ("spec.templates[0]", "template has no kind"),
    "two-template-kinds.yaml": ("spec.templates[0]",
                                "template sets several kinds (container, suspend)"),
    "loops-both.yaml": ("spec.templates[1].steps[0][0]",
                        "set only one of withItems, withParam and withSequence"),
    "enum-default.yaml": ("spec.arguments.parameters[0].value",
                          "'prod' is not one of the enum values"),
    "bad-retry-policy.yaml": ("spec.templates[0].retryStrategy.retryPolicy",
                              "'OnCrash' is not a retry policy"),
    # bad expressions and tags
    "bad-when.yaml": ("spec.templates[1].steps[1][0].when", "Unbalanced parenthesis"),
    "bad-retry-expression.yaml": ("spec.templates[0].retryStrategy.expression",
                                  "invalid expression 'asInt(lastRetry.exitCode) >"),
    "bad-hook-expression.yaml": ("spec.hooks.running.expression", "invalid expression"),
    "bad-depends.yaml": ("spec.templates[1].dag.tasks[1].depends",
                         "invalid depends expression"),
    "bad-tag-unclosed.yaml": ("spec.templates[0].container.command[1]",
                              "unclosed template tag"),
    "bad-tag-expression.yaml": ("spec.templates[0].container.command[1]",
                                "invalid expression in '{{=1 + }}'"),
    "bad-tag-empty.yaml": ("spec.templates[0].container.command[1]", "empty template tag"),
    "bad-cron-schedule.yaml": ("spec.schedules[0]", "cron schedule '0 25 * * *' is malformed"),
    # not a spec at all
    "empty.yaml": ("", "empty spec: no document found"),
    "comments-only.yaml": ("", "empty spec: no document found"),
    "binary-garbage.bin": ("", "not UTF-8 text"),
    "latin1-text.yaml": ("", "not UTF-8 text"),
    "invalid-yaml-syntax.yaml": ("line 8, column 3", "invalid YAML"),
    "json-truncated.json": ("line 1, column 92", "invalid JSON: Expecting value"),
    "nul-bytes.yaml": ("line 6", "NUL byte in spec text"),
    # hostile shapes
    # libyaml stops at its own flow-depth limit, pure-Python PyYAML at chute's 100 levels
    "deep-nesting.yaml": (None, "nest"),
    "billion-laughs.yaml": ("", "expands to more than 1,000,000 values"),
    "yaml-binary-tag.yaml": ("", "a value of type bytes is not JSON data"),
    "yaml-tag-mismatch.yaml": ("", "invalid YAML: a value does not fit its tag"),
    # unicode oddities
    "unicode-zero-width-name.yaml": ("spec.templates[0].name",
                                     "invalid template name 'ma\\u200bin'"),
    "unicode-rtl-override.yaml": ("spec.templates[1].steps[0][0].name",
                                  "invalid step name '\\u202eeciov'"),
    "unicode-nfc-nfd-collision.yaml": ("spec.templates[0].steps[0][0].template",
                                       "they differ only in Unicode normalisation"),
    "unicode-lone-surrogate.yaml": ("", "not UTF-8 text"),
}


def spec_issues(path: Path):
    """Every issue of the file, as the loader and the validator report them."""
    try:
        resources = load_file(path)
    except SpecError as exc:
        return exc.issues
    return validate_all(resources)


def test_corpus_is_complete_and_large_enough():
    files = sorted(p.name for p in CORPUS.iterdir())
    assert files == sorted(EXPECTED)
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_spec_is_refused_at_its_place(name):
    path, needle = EXPECTED[name]
    start = time.process_time()
    found = spec_issues(CORPUS / name)
    assert time.process_time() - start < 2
    assert found, f"{name} was accepted"
    assert any(path in (None, i.path) and needle in i.message for i in found), \
        [str(i) for i in found]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lint_exits_2_and_prints_the_place(name, capsys):
    path, needle = EXPECTED[name]
    file = CORPUS / name
    assert main(["lint", str(file)]) == 2
    out = capsys.readouterr()
    prefix = f"{file}: {path}: " if path else f"{file}: "
    if path is None:
        prefix = f"{file}: "
    assert any(line.startswith(prefix) and needle in line
               for line in out.out.splitlines()), out.out
    assert "Traceback" not in out.out + out.err


def test_lint_over_the_whole_corpus_in_a_process_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "chute.cli.app", "lint", *sorted(EXPECTED)],
        capture_output=True, text=True, timeout=120, cwd=CORPUS, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    named = {line.split(":", 1)[0] for line in proc.stdout.splitlines()}
    assert named == set(EXPECTED)
    assert not any(line.endswith(": ok") for line in proc.stdout.splitlines())


def test_fifty_megabyte_file_is_refused_without_reading_it(tmp_path, capsys):
    big = tmp_path / "huge.yaml"
    with big.open("wb") as f:
        f.write(b"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n# ")
        f.truncate(50 * 1024 * 1024)
    start = time.process_time()
    with pytest.raises(SpecError, match=r"spec is 52\.4 MB; the limit is 4\.2 MB"):
        load_file(big)
    assert main(["lint", str(big)]) == 2
    assert capsys.readouterr().out == f"{big}: spec is 52.4 MB; the limit is 4.2 MB\n"
    assert time.process_time() - start < 2


def test_a_huge_parameter_value_under_the_cap_is_fine(tmp_path):
    """Big is not broken: a 3 MB parameter value loads and validates (V-1's 10 MB values
    are over the 4 MB spec cap and are refused by size)."""
    value = "x" * (3 * 1024 * 1024)
    path = tmp_path / "big-value.yaml"
    path.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: b-}\n"
        "spec:\n  entrypoint: main\n  arguments:\n    parameters:\n"
        f"    - {{name: p, value: {value}}}\n  templates:\n  - name: main\n"
        "    container: {image: busybox, command: [echo, '{{workflow.parameters.p}}']}\n")
    start = time.process_time()
    assert validate_all(load_file(path)) == []
    assert time.process_time() - start < 2
