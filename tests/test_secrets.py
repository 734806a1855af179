"""The local secret store and ``chute secret`` (owner-only files, values never shown)."""

from __future__ import annotations

import os
import stat

import pytest

from chute.errors import ConflictError, NotFoundError, UserError
from chute.secrets import SecretStore, resolve_secret_ref, resolve_selector


def test_create_get_list_delete_with_owner_only_modes(chute_home):
    st = SecretStore()
    st.create("s3-creds", {"accessKey": "AK", "secretKey": "SK"})
    st.create("blob", {"key.bin": b"\x00\xff"})
    assert st.get("s3-creds", "secretKey") == "SK"
    assert st.get_bytes("blob", "key.bin") == b"\x00\xff"
    assert resolve_secret_ref("s3-creds", "accessKey") == "AK"
    assert [(s.name, s.keys) for s in st.list()] == [
        ("blob", ("key.bin",)), ("s3-creds", ("accessKey", "secretKey"))]
    d = chute_home / "secrets"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert b"SK" not in f.read_bytes()  # stored encoded, like a Kubernetes Secret
    with pytest.raises(ConflictError):
        st.create("s3-creds", {"a": "b"})
    st.create("s3-creds", {"a": "b"}, overwrite=True)
    assert st.list()[1].keys == ("a",)
    st.delete("blob")
    with pytest.raises(NotFoundError, match="'blob'"):
        st.get("blob", "key.bin")
    with pytest.raises(NotFoundError):
        st.delete("blob")


def test_loose_directory_modes_are_tightened(chute_home):
    d = chute_home / "secrets"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    SecretStore().create("x", {"k": "v"})
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["", "UPPER", "-lead", "trail-", "a_b", "../x", "a/b", "a" * 254,
                                  "x\x00", "ä"])
def test_names_are_kubernetes_names(chute_home, name):
    with pytest.raises(UserError, match="secret name"):
        SecretStore().create(name, {"k": "v"})


@pytest.mark.parametrize("key", ["", "a/b", "..", "a b", "k\n"])
def test_keys_are_kubernetes_secret_keys(chute_home, key):
    with pytest.raises(UserError, match="secret key"):
        SecretStore().create("ok", {key: "v"})


def test_errors_name_secret_and_key_never_the_value(chute_home):
    st = SecretStore()
    st.create("db", {"password": "hunter2-canary"})
    with pytest.raises(NotFoundError) as err:
        st.get("db", "user")
    assert "'db'" in str(err.value) and "'user'" in str(err.value)
    assert "hunter2" not in str(err.value)
    with pytest.raises(UserError, match="s3.accessKeySecret: secret 'nope' not found"):
        resolve_selector({"name": "nope", "key": "k"}, "s3.accessKeySecret", st)
    with pytest.raises(UserError, match="needs 'name' and 'key'"):
        resolve_selector({"name": "db"}, "env[0].valueFrom.secretKeyRef", st)


def _cli(*args):
    from chute.cli.app import main

    return main(list(args))


def test_cli_create_list_delete(chute_home, tmp_path, capsys):
    (tmp_path / "token.txt").write_text("file-canary-value")
    assert _cli("secret", "create", "api", "--from-literal", "user=me",
                "--from-file", f"token={tmp_path / 'token.txt'}",
                "--from-file", str(tmp_path / "token.txt")) == 0
    assert SecretStore().get("api", "token") == "file-canary-value"
    assert SecretStore().get("api", "token.txt") == "file-canary-value"
    capsys.readouterr()
    assert _cli("secret", "list") == 0
    out = capsys.readouterr().out
    assert "api" in out and "token" in out and "user" in out
    assert "file-canary-value" not in out and "me\n" not in out
    assert _cli("secret", "delete", "api") == 0
    assert SecretStore().list() == []


@pytest.mark.parametrize("args,message", [
    (["secret", "create", "Bad_Name", "--from-literal", "k=v"], "secret name"),
    (["secret", "create", "ok", "--from-literal", "novalue"], "KEY=VALUE"),
    (["secret", "create", "ok"], "at least one"),
    (["secret", "create", "ok", "--from-file", "/no/such/file"], "no such file"),
    (["secret", "create", "ok", "--from-literal", "k=1", "--from-literal", "k=2"], "twice"),
    (["secret", "delete", "missing"], "not found"),
])
def test_cli_bad_input_exits_2_with_a_clear_message(chute_home, capsys, args, message):
    assert _cli(*args) == 2
    assert message in capsys.readouterr().err
