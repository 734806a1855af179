"""``chute lint``: every Argo example lints clean; ``--runtime local`` names what the local
runtime cannot honour; files that are not workflow resources get one clear line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chute.cli.app import main
from chute.cli.lint import lint_files
from tests.conftest import REPO

#: Example files that are not Argo workflow kinds (Argo's e2e applies them with kubectl
#: before the run); chute refuses them with "not an Argo workflow resource".
NOT_WORKFLOWS = {
    "configmaps/simple-parameters-configmap.yaml": "ConfigMap read by the configMapKeyRef "
                                                   "examples",
    "testvolume.yaml": "PersistentVolumeClaim used by volumes-existing.yaml",
    "workflow-count-resourcequota.yaml": "ResourceQuota limiting workflows per namespace",
    "workflow-event-binding/event-consumer-workfloweventbinding.yaml":
        "WorkflowEventBinding (argo-server events API)",
    "workflow-event-binding/github-path-filter-workfloweventbinding.yaml":
        "WorkflowEventBinding (argo-server events API)",
}
#: Deliberate deviations from Argo, with the reason.
DEVIATIONS = {
    "k8s-patch-json-workflow.yaml": "really has a duplicate metadata.annotations key, which "
                                    "Go's YAML silently merges; RELIABILITY V-1 wants "
                                    "duplicate keys rejected",
}
#: K8S/NET examples chute runs locally all the same, with the reason.
LOCAL_OK_ANYWAY = {
    "arguments-artifacts.yaml": "http artifact: chute fetches HTTP artifacts",
    "input-artifact-http.yaml": "http artifact: chute fetches HTTP artifacts",
    "webhdfs-input-output-artifacts.yaml": "WebHDFS is reached as http artifacts",
    "input-artifact-git.yaml": "git artifact: chute clones git artifacts",
    "input-artifact-s3.yaml": "s3 artifact: chute's S3 store",
    "output-artifact-s3.yaml": "s3 artifact: chute's S3 store",
    "workflow-template/input-artifacts.yaml": "s3 artifact: chute's S3 store",
    "exit-handler-slack.yaml": "a plain curl step; only the network makes it NET",
    "k8s-patch-json-workflow.yaml": "refused at load (duplicate key), see DEVIATIONS",
}
#: What the local runtime refuses in H/H* examples until the engine runs it (the
#: "pending engine support" rows of chute.spec.validate_local.LOCAL_UNSUPPORTED).
PENDING = ("containerSet template", "daemon template", "sidecars", "initContainers")


def examples(argo_dir: Path) -> list[str]:
    root = argo_dir / "examples"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def catalogue(argo_dir: Path) -> dict[str, str]:
    """File -> Host column (H, H*, K8S, NET, X) of CATALOGUE.md."""
    hosts = {}
    for line in (argo_dir / "CATALOGUE.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) >= 12 and cells[0].isdigit():
            hosts[cells[1].strip("`")] = cells[6]
    return hosts


@pytest.fixture(scope="module")
def results(argo_dir):
    """Every example linted together (templates of one resolve references of others)."""
    root = argo_dir / "examples"
    names = [str(root / n) for n in examples(argo_dir)]
    plain = {Path(r["file"]).relative_to(root).as_posix(): r for r in lint_files(names)}
    local = {Path(r["file"]).relative_to(root).as_posix(): r
             for r in lint_files(names, runtime="local")}
    return plain, local


def test_directory_is_what_the_catalogue_lists(argo_dir):
    files = examples(argo_dir)
    assert all(f.endswith(".yaml") for f in files)
    assert set(files) == set(catalogue(argo_dir))
    assert len(files) == 217


def test_every_workflow_example_lints_clean(results, argo_dir):
    plain, _ = results
    bad = {f: [str(i) for i in r["issues"]] for f, r in plain.items()
           if not r["ok"] and f not in NOT_WORKFLOWS and f not in DEVIATIONS}
    assert bad == {}
    clean = [f for f, r in plain.items() if r["ok"]]
    assert len(clean) == 217 - len(NOT_WORKFLOWS) - len(DEVIATIONS)


def test_every_template_reference_resolves_among_the_examples(argo_dir):
    root = argo_dir / "examples"
    strict = lint_files([str(root / n) for n in examples(argo_dir)], strict=True)
    bad = [str(i) for r in strict for i in r["issues"]
           if Path(r["file"]).relative_to(root).as_posix() not in {*NOT_WORKFLOWS, *DEVIATIONS}]
    assert bad == []


@pytest.mark.parametrize("name", sorted(NOT_WORKFLOWS))
def test_other_kinds_are_refused_clearly(results, name):
    issues = results[0][name]["issues"]
    assert len(issues) == 1
    assert issues[0].path == "kind"
    assert issues[0].message.startswith("not an Argo workflow resource (kind: ")


def test_duplicate_key_deviation(results):
    (issue,) = results[0]["k8s-patch-json-workflow.yaml"]["issues"]
    assert "duplicate key 'annotations'" in issue.message
    assert issue.path.startswith("line ")


@pytest.mark.parametrize(("name", "expected"), [
    ("k8s-jobs.yaml", "not supported locally: resource template at "
                      "spec.templates[0].resource"),
    ("volumes-pvc.yaml", "not supported locally: "
                         "volumeClaimTemplates (PersistentVolumeClaim) at "
                         "spec.volumeClaimTemplates"),
    ("volumes-existing.yaml", "not supported locally: persistentVolumeClaim "
                              "volume at spec.volumes[0]"),
    ("arguments-parameters-from-configmap.yaml",
     "not supported locally: ConfigMap reference (configMapKeyRef) at "
     "spec.templates[0].inputs.parameters[0].valueFrom.configMapKeyRef"),
    ("synchronization-wf-level.yaml", "not supported locally: ConfigMap semaphore at "
                                      "spec.synchronization.semaphores[0].configMapKeyRef"),
    ("input-artifact-gcs.yaml", "not supported locally: gcs artifact at "
                                "spec.templates[0].inputs.artifacts[0].gcs"),
    ("http-hello-world.yaml", "not supported locally: http template at "
                              "spec.templates[1].http"),
    ("cron-backfill.yaml", "document 3: not supported locally: resource template at "
                           "spec.templates[1].resource"),
])
def test_local_runtime_names_what_it_cannot_honour(results, name, expected):
    _, local = results
    assert results[0][name]["ok"]
    assert any(expected in str(i) for i in local[name]["issues"]), local[name]["issues"]


def test_local_runtime_follows_the_catalogue(results, argo_dir):
    _, local = results
    hosts = catalogue(argo_dir)
    # every K8S and NET workflow example is refused, except those chute can run anyway
    missed = [f for f, h in hosts.items() if h in ("K8S", "NET") and local[f]["ok"]
              and f not in NOT_WORKFLOWS and f not in LOCAL_OK_ANYWAY]
    assert missed == []
    # H and H* examples are refused only for what the engine does not run yet
    for f, h in hosts.items():
        if h in ("H", "H*"):
            for issue in local[f]["issues"]:
                assert any(f"not supported locally: {p} " in issue.message for p in PENDING), \
                    (f, str(issue))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "chute.cli.app", "lint", *args], check=False,
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_cli_on_every_example_in_one_process(argo_dir):
    root = argo_dir / "examples"
    names = examples(argo_dir)
    proc = run_cli(*names, cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    ok = [ln for ln in lines if ln.endswith(": ok")]
    assert len(ok) == 217 - len(NOT_WORKFLOWS) - len(DEVIATIONS)
    assert "hello-world.yaml: ok" in lines
    assert any(ln.startswith("testvolume.yaml: kind: not an Argo workflow resource")
               for ln in lines)


def test_cli_exit_codes_text_and_json(tmp_path, capsys):
    good = REPO / "examples" / "hello-world.yaml"
    assert main(["lint", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("entrypoint: hello-world",
                                            "entrypoint: hello-wrld"))
    assert main(["lint", str(good), str(bad)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{good}: ok", f"{bad}: spec.entrypoint: unknown template 'hello-wrld' "
                                  "(did you mean 'hello-world'?)"]
    assert main(["lint", "-o", "json", str(bad)]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data == [{"file": str(bad), "ok": False, "issues": [
        {"path": "spec.entrypoint",
         "message": "unknown template 'hello-wrld' (did you mean 'hello-world'?)"}]}]


def test_cli_runtime_local_and_bad_options(capsys, argo_dir):
    k8s = argo_dir / "examples" / "k8s-jobs.yaml"
    assert main(["lint", "--runtime", "local", str(k8s)]) == 2
    assert capsys.readouterr().out == (
        f"{k8s}: not supported locally: resource template at spec.templates[0].resource\n")
    assert main(["lint", str(k8s)]) == 0
    capsys.readouterr()
    assert main(["lint", "--runtime", "kubernetes", str(k8s)]) == 2
    assert "unknown runtime 'kubernetes'" in capsys.readouterr().err
    assert main(["lint", "-o", "xml", str(k8s)]) == 2


def test_cli_strict_requires_referenced_templates(argo_dir, capsys):
    user = argo_dir / "examples" / "workflow-template" / "steps.yaml"
    library = argo_dir / "examples" / "workflow-template" / "templates.yaml"
    assert main(["lint", str(user)]) == 0
    capsys.readouterr()
    assert main(["lint", "--strict", str(user)]) == 2
    assert "unknown WorkflowTemplate 'workflow-template-inner-steps'" in capsys.readouterr().out
    assert main(["lint", "--strict", str(user), str(library)]) == 0


def test_cli_never_shows_a_traceback(tmp_path):
    binary = tmp_path / "garbage.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    unreadable = tmp_path / "locked.yaml"
    unreadable.write_text("a: 1")
    unreadable.chmod(0)
    proc = run_cli(str(tmp_path), str(tmp_path / "missing.yaml"), str(binary), str(empty),
                   str(unreadable))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{tmp_path}: is a directory, not a spec file"
    assert lines[1] == f"{tmp_path / 'missing.yaml'}: no such file"
    assert lines[2].startswith(f"{binary}: not UTF-8 text")
    assert lines[3] == f"{empty}: empty spec: no document found"
    if os.geteuid() != 0:  # root reads any file
        assert lines[4] == f"{unreadable}: permission denied"
    assert len(lines) == 5


def test_cli_usage_errors_exit_2_without_traceback():
    for args in ([], ["--bogus", "x"]):
        proc = run_cli(*args)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert "Usage: chute lint [OPTIONS]" in proc.stderr


def test_cli_reads_standard_input():
    text = (REPO / "examples" / "hello-world.yaml").read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "chute.cli.app", "lint", "-"], input=text,
                          check=False, capture_output=True, text=True, timeout=60, env=env)
    assert (proc.returncode, proc.stdout) == (0, "-: ok\n")


def test_help_lists_lint():
    proc = subprocess.run([sys.executable, "-m", "chute.cli.app", "--help"], check=False,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0
    assert re.search(r"\blint\b", proc.stdout)
