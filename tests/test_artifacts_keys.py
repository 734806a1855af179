"""Artifact key validation (RELIABILITY.md §3.3 item 6; the V-1 and S-5 encodings)."""

from __future__ import annotations

import os

import pytest

from chute.artifacts.keys import artifact_key, resolve_under, safe_key
from chute.errors import UserError

BAD_KEYS = [
    "../x", "../../etc/passwd", "a/../../b", "a/..", "..", ".", "./a", "a/./b",
    "/etc/passwd", "/", "//server/share", "\\x", "..\\x", "a\\..\\..\\b", "C:\\x", "C:/x",
    "..%2f", "..%2fetc%2fpasswd", "%2e%2e/x", "%2e%2e%2fx", "a/%2e%2e/b", "%2fetc%2fpasswd",
    "..%5cx", "%5c..%5cx",
    "%252e%252e%252f", "%252e%252e/x", "a/%252fb", "%25252e",
    "a\x00b", "a%00b", "x/\x00", "a\nb", "a%0ab", "a\rb",
    "", "   ".strip(), "a//b",
    "a/" + "x" * 1100,
]

GOOD_KEYS = ["a", "a/b/c.tgz", "wf-uid/node-1/out.tgz", "my-file", "parts/", "data/100%.csv",
             "a b/c d.txt", "ünïcödé/ключ", "a..b/c", "...x", "x%20y"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_with_the_field_named(key):
    with pytest.raises(UserError) as err:
        safe_key(key, where="inputs.artifacts[0].s3.key")
    assert "inputs.artifacts[0].s3.key" in str(err.value)


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass_unchanged(key):
    assert safe_key(key) == key.rstrip("/")


def test_resolve_under_refuses_symlinks_leaving_the_root(tmp_path):
    root = tmp_path / "store"
    (root / "run").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    os.symlink(outside, root / "run" / "link")
    os.symlink(tmp_path, root / "up")
    assert resolve_under(root, "run/file") == (root / "run" / "file").resolve()
    for key in ("run/link", "up/secret.txt", "up"):
        with pytest.raises(UserError, match="outside"):
            resolve_under(root, key)


def test_default_key_layout_starts_with_the_workflow_uid():
    assert artifact_key("u-1", "n-2", "model", "tgz") == "u-1/n-2/model.tgz"
    assert artifact_key("u-1", "n-2", "model", "zip") == "u-1/n-2/model.zip"
    assert artifact_key("u-1", "n-2", "model", "none", "m.pkl") == "u-1/n-2/model/m.pkl"
    assert artifact_key("u-1", "n-2", "model", "none") == "u-1/n-2/model"
    for bad in (("..", "n", "a"), ("u", "../n", "a"), ("u", "n", "a/b"), ("u", "n", "")):
        with pytest.raises(UserError):
            artifact_key(*bad, "tgz")
    with pytest.raises(UserError):
        artifact_key("u", "n", "a", "none", "../x")
