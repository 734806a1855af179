"""Reading tables for pipeline steps: CSV or Parquet, from a path, HTTP or S3, validated.

A step that ingests data should fail on bad input with a message a person can act on, not
a stack trace from deep inside pandas. :func:`read_table` and :func:`read_prefix` check that
the file is not empty, that every required column is there and numeric, and that label
columns hold only 0/1; a :class:`DataError` names the file, the column and the first bad
row (``transactions.csv: column 'Amount' is not numeric (row 3: 'abc')``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from chute.errors import UserError

TABLE_SUFFIXES = (".csv", ".parquet")


class DataError(UserError):
    """Data that cannot be used; the message names the file and the column."""

    code = "invalid_data"


def parse_table(raw: bytes, source: str):
    """A data frame from CSV or Parquet bytes (Parquet recognised by its magic number)."""
    import pandas as pd

    if not raw.strip():
        raise DataError(f"{source}: file is empty")
    if raw[:4] == b"PAR1":
        return pd.read_parquet(io.BytesIO(raw))
    try:
        return pd.read_csv(io.BytesIO(raw), low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source}: file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not a valid CSV file: {exc}") from exc


def validate_frame(frame, source: str, required: Sequence[str],
                   binary: Sequence[str] = ()):
    """Check ``frame`` (read from ``source``) and return its required columns as float64.

    Every column of ``required`` must be present and numeric; columns in ``binary`` must
    hold only 0 and 1; there must be at least one row.
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column{'s' if len(missing) > 1 else ''} "
                        + ", ".join(repr(c) for c in missing))
    if frame.empty:
        raise DataError(f"{source}: no rows (only a header)")
    out = frame[list(required)].copy()
    for column in required:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column {column!r} is not numeric "
                            f"(row {row + 1}: {out[column].iloc[row]!r})")
        out[column] = values.astype(np.float64)
    for column in binary:
        found = set(out[column].dropna().unique().tolist()) - {0.0, 1.0}
        if found:
            raise DataError(f"{source}: column {column!r} must be 0 or 1, found "
                            f"{sorted(found)[:3]}")
    return out


def read_table(source: str, required: Sequence[str], binary: Sequence[str] = (),
               storage_options: Mapping[str, Any] | None = None):
    """Read and validate one table from a local path or an ``http(s)://``/``s3://`` URL."""
    import fsspec

    source = str(source)
    try:
        with fsspec.open(source, "rb", **dict(storage_options or {})) as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise DataError(f"{source}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{source}: cannot read: {exc}") from exc
    return validate_frame(parse_table(raw, source), source, required, binary)


def read_prefix(url: str, required: Sequence[str], binary: Sequence[str] = (),
                storage_options: Mapping[str, Any] | None = None):
    """Read and concatenate every ``.csv``/``.parquet`` under a prefix; (frame, sources).

    ``url`` is ``s3://bucket/prefix`` (or any fsspec URL, a local directory too). Objects
    are read in key order; a prefix with none is a :class:`DataError` naming it.
    """
    import fsspec
    import pandas as pd

    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    root = root.rstrip("/")
    try:
        keys = sorted(k for k in fs.find(root) if k.endswith(TABLE_SUFFIXES))
    except FileNotFoundError:
        keys = []
    except OSError as exc:
        raise DataError(f"{url}: cannot list: {exc}") from exc
    if not keys:
        raise DataError(f"{url}: no .csv or .parquet objects under this prefix")
    scheme = url.split("://", 1)[0] + "://" if "://" in url else ""
    frames, sources = [], []
    for key in keys:
        source = scheme + key
        with fs.open(key, "rb") as fh:
            frames.append(validate_frame(parse_table(fh.read(), source), source, required,
                                         binary))
        sources.append(source)
    return pd.concat(frames, ignore_index=True), sources


def empty_frame(columns: Sequence[str]):
    """A float64 frame with these columns and no rows (a source that is switched off)."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns})


def frame_digest(frame) -> str:
    """A content digest of a frame's values and column names (not of a file's bytes)."""
    import pandas as pd

    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()
