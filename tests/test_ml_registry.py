"""The model registry on a real SQLite file: versions, stages, transitions, and the CLI."""

from __future__ import annotations

import json

import pytest

from chute.config import load_settings
from chute.errors import ConflictError, NotFoundError, ParameterError
from chute.ml import registry as reg
from chute.ml.registry import Registry
from chute.store.db import open_store


@pytest.fixture
def registry(chute_home) -> Registry:
    store = open_store(load_settings())
    yield Registry(store)
    store.dispose()


def _register(r: Registry, name="fraud", **kw):
    kw.setdefault("artifact_uri", "file:///models/m.skops")
    return r.register_version(name, **kw)


def test_versions_number_from_one_and_keep_everything(registry, chute_home):
    v1 = _register(registry, metrics={"pr_auc": 0.8}, params={"n_estimators": 100},
                   data_digests={"train": "sha256:aa"}, workflow_uid="uid-1",
                   workflow_name="fraud-abc", node_id="fraud-abc-123")
    v2 = _register(registry, artifact_uri="s3://b/m2.skops")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.stage == v2.stage == "none"
    # a fresh store on the same file reads back what was written
    again = Registry(open_store(load_settings())).get("fraud", 1)
    assert again.metrics == {"pr_auc": 0.8} and again.params == {"n_estimators": 100}
    assert again.data_digests == {"train": "sha256:aa"}
    assert (again.workflow_uid, again.workflow_name, again.node_id) == (
        "uid-1", "fraud-abc", "fraud-abc-123")
    assert (chute_home / "chute.db").is_file()
    assert registry.get("fraud").version == 2  # latest
    assert registry.get("fraud", "2").artifact_uri == "s3://b/m2.skops"


def test_numpy_values_are_stored_as_plain_json(registry):
    np = pytest.importorskip("numpy")
    v = _register(registry, metrics={"pr_auc": np.float64(0.5), "cm": np.array([[1, 2]])})
    assert registry.get("fraud", v.version).metrics == {"pr_auc": 0.5, "cm": [[1, 2]]}


def test_promote_to_production_archives_the_previous_one(registry):
    for _ in range(3):
        _register(registry)
    registry.promote("fraud", 1, "production")
    registry.promote("fraud", 2, "staging")
    registry.promote("fraud", 2, "production")
    stages = {v.version: v.stage for v in registry.list("fraud")}
    assert stages == {1: "archived", 2: "production", 3: "none"}
    assert registry.get("fraud", "production").version == 2
    (summary,) = registry.list()
    assert (summary.name, summary.versions, summary.latest_version,
            summary.production_version) == ("fraud", 3, 3, 2)
    assert [v.version for v in registry.list("fraud", stage="archived")] == [1]


def test_register_straight_into_production_archives_previous(registry):
    _register(registry, stage="production")
    _register(registry, stage="production")
    assert [v.stage for v in registry.list("fraud")] == ["production", "archived"]


@pytest.mark.parametrize("start,target", [
    ("production", "none"), ("archived", "production"), ("none", "none")])
def test_invalid_transitions_are_conflicts(registry, start, target):
    _register(registry)
    path = {"none": [], "production": ["production"], "archived": ["archived"]}[start]
    for stage in path:
        registry.promote("fraud", 1, stage)
    with pytest.raises(ConflictError, match=f"'{target}'"):
        registry.promote("fraud", 1, target)
    assert registry.get("fraud", 1).stage == start  # nothing changed


def test_bad_input_names_the_problem(registry):
    _register(registry)
    with pytest.raises(ParameterError, match="stage 'prod'"):
        registry.promote("fraud", 1, "prod")
    with pytest.raises(ParameterError, match="model name 'Bad Name'"):
        _register(registry, name="Bad Name")
    with pytest.raises(NotFoundError, match="model 'nope' not found"):
        registry.get("nope")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get("fraud", 9)
    with pytest.raises(NotFoundError, match="no version in stage 'production'"):
        registry.get("fraud", "production")
    with pytest.raises(ParameterError, match="artifact_uri"):
        _register(registry, artifact_uri="")
    assert registry.find("nope") is None


def test_session_functions_leave_the_transaction_to_the_caller(registry):
    store = registry.store
    try:
        with store.write() as s:
            reg.register_version(s, "fraud", artifact_uri="file:///m")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert registry.list() == []


# -- the CLI -------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch, chute_home, capsys):
    from chute.cli import app

    # only this group: other command modules land in parallel and are not under test here
    monkeypatch.setattr(app, "COMMAND_MODULES", ["chute.cli.models"])

    def run(*args: str) -> tuple[int, str, str]:
        code = app.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_list_get_promote(cli, registry):
    _register(registry, metrics={"pr_auc": 0.81}, params={"max_depth": 8},
              data_digests={"train": "sha256:ab"}, workflow_name="fraud-x")
    code, out, _ = cli("models", "list")
    assert code == 0 and "fraud" in out and "PRODUCTION" in out
    code, out, _ = cli("models", "list", "fraud")
    assert code == 0 and "pr_auc=0.81" in out and "fraud-x" in out
    code, out, _ = cli("models", "get", "fraud", "1")
    assert code == 0 and "max_depth: 8" in out and "sha256:ab" in out
    code, out, _ = cli("models", "promote", "fraud", "1", "staging")
    assert code == 0 and "version 1 -> staging" in out
    code, out, _ = cli("models", "get", "fraud", "staging", "-o", "json")
    assert code == 0 and json.loads(out)["stage"] == "staging"
    code, out, _ = cli("models", "list", "-o", "json")
    assert json.loads(out)[0]["staging_versions"] == [1]


@pytest.mark.parametrize("args,message", [
    (("models", "promote", "fraud", "1", "gold"), "stage 'gold'"),
    (("models", "promote", "fraud", "x", "staging"), "version 'x'"),
    (("models", "promote", "fraud", "1", "none"), "already in 'none'"),
    (("models", "get", "ghost"), "model 'ghost' not found"),
    (("models", "get", "fraud", "7"), "no version 7"),
    (("models", "list", "-o", "yaml"), "--output 'yaml'"),
])
def test_cli_bad_input_exits_2(cli, registry, args, message):
    _register(registry)
    code, _, err = cli(*args)
    assert code == 2
    assert message in err


def test_cli_download_copies_the_model_file_from_the_artifact_repository(cli, registry,
                                                                         chute_home, tmp_path):
    from chute.artifacts import ArtifactRepository

    repo = ArtifactRepository.from_settings()
    src = tmp_path / "m.bin"
    src.write_bytes(b"model-bytes")
    repo.put_file(src, "models/fraud/uid-1/model.skops")
    _register(registry, artifact_uri=f"{repo.uri}/models/fraud/uid-1/model.skops")
    _register(registry, artifact_uri="s3://elsewhere/m.skops")
    code, _, err = cli("models", "get", "fraud", "1", "--download", str(tmp_path / "out.skops"))
    assert code == 0 and "saved to" in err
    assert (tmp_path / "out.skops").read_bytes() == b"model-bytes"
    code, _, err = cli("models", "get", "fraud", "2", "--download", str(tmp_path / "x"))
    assert code == 2 and "is not in the artifact repository" in err
