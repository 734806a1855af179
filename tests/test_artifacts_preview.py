"""Bounded previews of stored artifacts for the UI."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from chute.artifacts import ArtifactRepository, preview


def _png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


@pytest.fixture
def repo(chute_home):
    return ArtifactRepository.from_settings()


def _save(repo, tmp_path, name, data, archive=None, binary=False):
    p = tmp_path / name
    p.write_bytes(data if binary else data.encode())
    return repo.save(p, name="a" + str(abs(hash(name)) % 1000), workflow_uid="u",
                     node_id="n", archive=archive)


@pytest.mark.parametrize("archive", [None, {"none": {}}])
def test_csv_shows_header_and_first_rows_only(tmp_path, repo, archive):
    rows = "\n".join(f"{i},{i * i}" for i in range(10_000))
    rec = _save(repo, tmp_path, "data.csv", "n,sq\n" + rows + "\n", archive)
    pv = preview(repo, rec, max_bytes=4096)
    assert pv.kind == "csv" and pv.payload["columns"] == ["n", "sq"]
    assert pv.payload["rows"][:2] == [["0", "0"], ["1", "1"]] and len(pv.payload["rows"]) == 20
    assert pv.truncated


def test_json_is_pretty_printed_and_text_is_bounded(tmp_path, repo):
    rec = _save(repo, tmp_path, "m.json", json.dumps({"acc": 0.9, "f1": [1, 2]}))
    pv = preview(repo, rec)
    assert pv.kind == "json" and json.loads(pv.payload) == {"acc": 0.9, "f1": [1, 2]}
    assert "\n  " in pv.payload
    rec = _save(repo, tmp_path, "log.txt", "é" * 10_000, {"none": {}})
    pv = preview(repo, rec, max_bytes=1001)
    assert pv.kind == "text" and pv.truncated and len(pv.payload.encode()) <= 1001
    assert "\ufffd" not in pv.payload


def test_images_binary_and_directories(tmp_path, repo):
    png = _png()
    pv = preview(repo, _save(repo, tmp_path, "plot.png", png, binary=True))
    assert (pv.kind, pv.mime, pv.payload) == ("image", "image/png", png)
    pv = preview(repo, _save(repo, tmp_path, "big.png", png + b"\x00" * 5000, binary=True),
                 max_bytes=1000)
    assert pv.kind == "binary"  # an image cut short is not shown as an image
    pv = preview(repo, _save(repo, tmp_path, "m.bin", b"\x00\x01\x02" * 100, binary=True))
    assert pv.kind == "binary" and pv.payload.startswith("000102")
    svg = _save(repo, tmp_path, "x.svg", "<svg onload='alert(1)'/>")
    assert preview(repo, svg).kind == "text"
    d = tmp_path / "d"
    d.mkdir()
    (d / "one.txt").write_text("1")
    (d / "two.txt").write_text("2")
    for archive in (None, {"none": {}}):
        rec = repo.save(d, name="dd", workflow_uid="u", node_id="n" + str(bool(archive)),
                        archive=archive)
        pv = preview(repo, rec)
        assert pv.kind == "directory" and sorted(pv.payload)[-2:] == ["one.txt", "two.txt"]
