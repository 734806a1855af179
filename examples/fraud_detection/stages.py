"""The fraud-detection pipeline's stages as pure functions on data frames and files.

Each pipeline component is a thin wrapper around one function here, so the logic is unit
tested on small data without running a pipeline:

``read_transactions`` / ``read_s3_prefix``   ingest: load a CSV or Parquet file (local,
                                             HTTP, S3) and validate columns and types
``merge`` / ``split`` / ``fit_scaler``       transform: merge sources, clean, stratified
                                             split, scale Amount and Time
``train_model`` / ``save_model`` / ``load_model``   a class-weighted random forest, saved
                                             with skops (never pickle)
``evaluate``                                 ROC-AUC, PR-AUC, precision/recall at a
                                             threshold, confusion matrix, ROC curve
``quality_gate``                             the publish decision, with its reasons

Errors in the data raise :class:`DataError` whose message names the file and the column.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = [f"V{i}" for i in range(1, 29)]
REQUIRED_COLUMNS = ["Time", *FEATURES, "Amount", "Class"]
MODEL_FEATURES = [*FEATURES, "scaled_amount", "scaled_time"]
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 100, "max_depth": 0, "min_samples_leaf": 5, "max_features": "sqrt",
    "max_samples": 0.3,
}
ROC_POINTS = 101  # ROC curve points kept for the UI


class DataError(ValueError):
    """Transactions that cannot be used; the message names the file and the column."""


# -- ingest ------------------------------------------------------------------------------

def _parse(raw: bytes, source: str) -> pd.DataFrame:
    if not raw.strip():
        raise DataError(f"{source}: file is empty")
    if raw[:4] == b"PAR1":
        return pd.read_parquet(io.BytesIO(raw))
    try:
        return pd.read_csv(io.BytesIO(raw), low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source}: file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{source}: not a valid CSV file: {exc}") from exc


def validate(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns and types of transactions read from ``source``; return them typed.

    Every required column must be there and numeric (an ``Amount`` of ``"abc"`` names the
    column and the first bad row); ``Class`` must be 0 or 1; there must be rows.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column{'s' if len(missing) > 1 else ''} "
                        + ", ".join(repr(c) for c in missing))
    if frame.empty:
        raise DataError(f"{source}: no rows (only a header)")
    out = frame[REQUIRED_COLUMNS].copy()
    for column in REQUIRED_COLUMNS:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: column {column!r} is not numeric "
                            f"(row {row + 1}: {out[column].iloc[row]!r})")
        out[column] = values.astype(np.float64)
    classes = set(out["Class"].dropna().unique().tolist())
    if not classes <= {0.0, 1.0}:
        raise DataError(f"{source}: column 'Class' must be 0 or 1, found "
                        f"{sorted(classes - {0.0, 1.0})[:3]}")
    return out


def read_transactions(source: str | Path, storage_options: Mapping[str, Any] | None = None
                      ) -> pd.DataFrame:
    """Read and validate transactions from a local path, ``http(s)://`` or ``s3://`` URL."""
    import fsspec

    source = str(source)
    try:
        with fsspec.open(source, "rb", **dict(storage_options or {})) as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise DataError(f"{source}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{source}: cannot read: {exc}") from exc
    return validate(_parse(raw, source), source)


def read_s3_prefix(bucket: str, prefix: str, storage_options: Mapping[str, Any]
                   ) -> tuple[pd.DataFrame, list[str]]:
    """Read every ``.csv``/``.parquet`` object under ``s3://bucket/prefix``; (frame, keys)."""
    import fsspec

    fs = fsspec.filesystem("s3", **dict(storage_options))
    root = f"{bucket}/{prefix.strip('/')}".rstrip("/")
    try:
        keys = sorted(k for k in fs.find(root) if k.endswith((".csv", ".parquet")))
    except FileNotFoundError:
        keys = []
    if not keys:
        raise DataError(f"s3://{root}: no .csv or .parquet objects under this prefix")
    frames = []
    for key in keys:
        with fs.open(key, "rb") as fh:
            frames.append(validate(_parse(fh.read(), f"s3://{key}"), f"s3://{key}"))
    return pd.concat(frames, ignore_index=True), [f"s3://{k}" for k in keys]


def empty_transactions() -> pd.DataFrame:
    """A frame with the required columns and no rows (a source that is switched off)."""
    return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in REQUIRED_COLUMNS})


# -- transform ---------------------------------------------------------------------------

def digest(frame: pd.DataFrame) -> str:
    """A content digest of a frame (values and column names, not the file encoding)."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()


def merge(frames: Iterable[pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Merge sources and clean: drop incomplete rows, negative amounts, duplicates.

    Returns the merged frame sorted by Time, and counts of what was dropped.
    """
    frames = [f for f in frames if len(f)]
    if not frames:
        raise DataError("no transactions: every source is empty")
    merged = pd.concat(frames, ignore_index=True)
    n = len(merged)
    merged = merged.dropna()
    incomplete = n - len(merged)
    negative = int((merged["Amount"] < 0).sum())
    merged = merged[merged["Amount"] >= 0]
    before = len(merged)
    merged = merged.drop_duplicates()
    stats = {"rows_in": n, "incomplete": incomplete, "negative_amount": negative,
             "duplicates": before - len(merged), "rows_out": len(merged)}
    merged = merged.sort_values("Time", kind="stable").reset_index(drop=True)
    merged["Class"] = merged["Class"].astype(np.int64)
    return merged, stats


def split(frame: pd.DataFrame, test_size: float = 0.25, seed: int = 7
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split on ``Class`` (both keep their Time order)."""
    from sklearn.model_selection import train_test_split

    if frame["Class"].nunique() < 2 or frame["Class"].value_counts().min() < 2:
        raise DataError("need at least 2 rows of each class to split train/test")
    train, test = train_test_split(frame, test_size=test_size, stratify=frame["Class"],
                                   random_state=seed)
    return train.sort_index().reset_index(drop=True), test.sort_index().reset_index(drop=True)


def fit_scaler(train: pd.DataFrame) -> dict[str, float]:
    """Robust scaling of log-Amount and Time, fitted on the training split only."""
    log_amount = np.log1p(train["Amount"].to_numpy())
    q1, med, q3 = np.percentile(log_amount, [25, 50, 75])
    t = train["Time"].to_numpy()
    return {"amount_median": float(med), "amount_iqr": float(max(q3 - q1, 1e-9)),
            "time_min": float(t.min()), "time_span": float(max(t.max() - t.min(), 1.0))}


def apply_scaler(frame: pd.DataFrame, scaler: Mapping[str, float]) -> pd.DataFrame:
    """Add ``scaled_amount`` and ``scaled_time``; the raw columns stay for slicing."""
    out = frame.copy()
    out["scaled_amount"] = (np.log1p(out["Amount"]) - scaler["amount_median"]) / scaler["amount_iqr"]
    out["scaled_time"] = (out["Time"] - scaler["time_min"]) / scaler["time_span"]
    return out


def transform(frames: Sequence[pd.DataFrame], test_size: float = 0.25, seed: int = 7
              ) -> dict[str, Any]:
    """Merge, clean, split and scale; returns train, test, the scaler, stats and digest."""
    merged, stats = merge(frames)
    train, test = split(merged, test_size, seed)
    scaler = fit_scaler(train)
    return {"train": apply_scaler(train, scaler), "test": apply_scaler(test, scaler),
            "scaler": scaler, "stats": stats, "digest": digest(merged)}


def recent_slice(frame: pd.DataFrame, hours: float) -> pd.DataFrame:
    """The rows of the last ``hours`` hours of ``frame`` (by raw ``Time``)."""
    if hours <= 0 or frame.empty:
        return frame
    return frame[frame["Time"] >= frame["Time"].max() - hours * 3600.0]


# -- train -------------------------------------------------------------------------------

def forest_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """RandomForestClassifier arguments from pipeline params (``max_depth`` 0 = unlimited)."""
    p = {**DEFAULT_PARAMS, **dict(params)}
    max_features = p["max_features"]
    if isinstance(max_features, str) and max_features not in ("sqrt", "log2"):
        max_features = float(max_features)
    max_samples = float(p["max_samples"])
    return {"n_estimators": int(p["n_estimators"]),
            "max_depth": int(p["max_depth"]) or None,
            "min_samples_leaf": int(p["min_samples_leaf"]),
            "max_features": max_features,
            "max_samples": max_samples if 0 < max_samples < 1 else None}


def train_model(train: pd.DataFrame, params: Mapping[str, Any], seed: int = 7, n_jobs: int = 2):
    """Fit a class-weighted RandomForestClassifier on ``MODEL_FEATURES``."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(class_weight="balanced_subsample", random_state=seed,
                                   n_jobs=n_jobs, **forest_kwargs(params))
    model.fit(train[MODEL_FEATURES].to_numpy(), train["Class"].to_numpy().astype(int))
    return model


def save_model(model, path: str | Path) -> Path:
    """Save with skops (a safe format: loading it runs no code), never pickle."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def load_model(path: str | Path):
    """Load a skops model, refusing any type outside scikit-learn and numpy."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy."))]
    if len(allowed) != len(untrusted):
        bad = sorted(set(untrusted) - set(allowed))
        raise DataError(f"{path}: model file holds untrusted types {bad}")
    return sio.load(path, trusted=allowed)


def predict_scores(model, frame: pd.DataFrame) -> np.ndarray:
    """Fraud probability of each row."""
    return model.predict_proba(frame[MODEL_FEATURES].to_numpy())[:, 1]


# -- evaluate ----------------------------------------------------------------------------

def evaluate(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Classification metrics at ``threshold``, with the confusion matrix and ROC curve.

    Returns ``{"metrics": {roc_auc, pr_auc, precision, recall, f1, ...}, "confusion":
    [[tn, fp], [fn, tp]], "roc": {"fpr", "tpr", "thresholds"}}``. With a single class in
    ``y_true`` the AUCs are undefined and reported as 0.
    """
    from sklearn.metrics import (average_precision_score, confusion_matrix, roc_auc_score,
                                 roc_curve)

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=float)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, predicted, labels=[0, 1]).ravel())
    both = len(np.unique(y_true)) == 2
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else 0.0,
        "pr_auc": float(average_precision_score(y_true, scores)) if both else 0.0,
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "threshold": float(threshold), "rows": int(len(y_true)), "frauds": int(y_true.sum()),
    }
    roc = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]}
    if both:
        fpr, tpr, thr = roc_curve(y_true, scores)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
        # sklearn's first threshold is +inf; JSON has no infinity
        thr = np.minimum(thr, 1.0)
        roc = {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist(),
               "thresholds": thr[keep].round(6).tolist()}
    return {"metrics": metrics, "confusion": [[tn, fp], [fn, tp]], "roc": roc}


def quality_gate(results: Sequence[Mapping[str, Any]], min_pr_auc: float, min_recall: float
                 ) -> tuple[bool, list[str]]:
    """Pass only if every validation setting meets both floors; (passed, reasons).

    ``results`` are validation results, each ``{"setting": name, "pr_auc": .., "recall": ..}``.
    Reasons list every failed check, so the run's message says what to fix.
    """
    if not results:
        return False, ["no validation results"]
    reasons = []
    for r in results:
        name = r.get("setting", "?")
        if float(r["pr_auc"]) < min_pr_auc:
            reasons.append(f"{name}: PR-AUC {float(r['pr_auc']):.3f} < {min_pr_auc}")
        if float(r["recall"]) < min_recall:
            reasons.append(f"{name}: recall {float(r['recall']):.3f} < {min_recall}")
    return not reasons, reasons


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as JSON (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))
    return path
