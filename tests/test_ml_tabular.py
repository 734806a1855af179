"""Validated table reading: bad data fails with the file and column named; HTTP and dirs."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import pytest

pd = pytest.importorskip("pandas")

from chute.errors import UserError
from chute.ml.datasets import COLUMNS, make_transactions, write_csv
from chute.ml.tabular import DataError, empty_frame, frame_digest, read_prefix, read_table


@pytest.fixture
def small(tmp_path):
    path = write_csv(make_transactions(200, 0.05, seed=1), tmp_path / "tx.csv")
    return path


def test_reads_csv_and_parquet_typed(small, tmp_path):
    frame = read_table(str(small), COLUMNS, binary=["Class"])
    assert list(frame.columns) == COLUMNS and len(frame) == 200
    assert all(str(t) == "float64" for t in frame.dtypes)
    frame.to_parquet(tmp_path / "tx.parquet", index=False)
    again = read_table(str(tmp_path / "tx.parquet"), COLUMNS)
    assert frame_digest(again) == frame_digest(frame)
    assert DataError.__mro__[1] is UserError


def test_missing_column_is_named(small, tmp_path):
    frame = pd.read_csv(small).drop(columns=["V17"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing column 'V17'"):
        read_table(str(tmp_path / "bad.csv"), COLUMNS)


def test_non_numeric_amount_names_column_and_row(small, tmp_path):
    frame = pd.read_csv(small)
    frame["Amount"] = frame["Amount"].astype(object)
    frame.loc[2, "Amount"] = "12,50 EUR"
    frame.to_csv(tmp_path / "amount.csv", index=False)
    with pytest.raises(DataError, match=r"amount\.csv: column 'Amount' is not numeric "
                                        r"\(row 3: '12,50 EUR'\)"):
        read_table(str(tmp_path / "amount.csv"), COLUMNS)


@pytest.mark.parametrize("content,message", [
    (b"", "file is empty"),
    (b"\n  \n", "file is empty"),
    (",".join(COLUMNS).encode() + b"\n", "no rows"),
])
def test_empty_files_are_named(tmp_path, content, message):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"empty\.csv: {message}"):
        read_table(str(path), COLUMNS)


def test_label_must_be_binary_and_missing_file_is_named(small, tmp_path):
    frame = pd.read_csv(small)
    frame.loc[0, "Class"] = 3
    frame.to_csv(tmp_path / "label.csv", index=False)
    with pytest.raises(DataError, match=r"column 'Class' must be 0 or 1, found \[3.0\]"):
        read_table(str(tmp_path / "label.csv"), COLUMNS, binary=["Class"])
    with pytest.raises(DataError, match=r"nowhere\.csv: file not found"):
        read_table(str(tmp_path / "nowhere.csv"), COLUMNS)


def test_reads_over_http(small):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(small.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tx.csv"
        assert len(read_table(url, COLUMNS)) == 200
        with pytest.raises(DataError, match="missing.csv"):
            read_table(url.replace("tx.csv", "missing.csv"), COLUMNS)
    finally:
        server.shutdown()
        server.server_close()


def test_read_prefix_concatenates_in_key_order(tmp_path):
    a, b = make_transactions(50, 0.1, seed=1), make_transactions(30, 0.1, seed=2)
    (tmp_path / "p").mkdir()
    write_csv(a, tmp_path / "p" / "a.csv")
    b.to_parquet(tmp_path / "p" / "b.parquet", index=False)
    (tmp_path / "p" / "notes.txt").write_text("ignored")
    frame, sources = read_prefix(str(tmp_path / "p"), COLUMNS)
    assert len(frame) == 80 and [s.rsplit("/", 1)[1] for s in sources] == ["a.csv", "b.parquet"]
    with pytest.raises(DataError, match="no .csv or .parquet objects"):
        read_prefix(str(tmp_path / "void"), COLUMNS)
    assert list(empty_frame(COLUMNS).columns) == COLUMNS
