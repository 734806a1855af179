"""Binary classifiers in pipeline steps: metrics, a quality gate, safe model files.

* :func:`evaluate_binary` -- ROC-AUC, PR-AUC, precision/recall/F1 at a threshold, the
  confusion matrix and an ROC curve thinned to at most ``ROC_POINTS`` points (what the UI
  draws and a ``ClassificationMetrics`` artifact holds).
* :func:`quality_gate` -- the publish decision over several validation settings, with the
  reason for every failed check.
* :func:`save_model` / :func:`load_model` -- scikit-learn models in the skops format:
  loading one runs no code, and types outside scikit-learn and numpy are refused.
  Never pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chute.errors import UserError

ROC_POINTS = 101
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class ModelFileError(UserError):
    """A model file that cannot be loaded safely."""

    code = "invalid_model"


def evaluate_binary(y_true, scores, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of fraud scores at ``threshold``.

    Returns ``{"metrics": {roc_auc, pr_auc, precision, recall, f1, threshold, rows,
    positives}, "confusion": [[tn, fp], [fn, tp]], "roc": {"fpr", "tpr", "thresholds"}}``.
    With one class only in ``y_true`` the AUCs are undefined and reported as 0.
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=float)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in
                      confusion_matrix(y_true, predicted, labels=[0, 1]).ravel())
    both = len(np.unique(y_true)) == 2
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else 0.0,
        "pr_auc": float(average_precision_score(y_true, scores)) if both else 0.0,
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "threshold": float(threshold), "rows": len(y_true),
        "positives": int(y_true.sum()),
    }
    roc = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]}
    if both:
        fpr, tpr, thr = roc_curve(y_true, scores)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
        thr = np.minimum(thr, 1.0)  # sklearn's first threshold is +inf; JSON has none
        roc = {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist(),
               "thresholds": thr[keep].round(6).tolist()}
    return {"metrics": metrics, "confusion": [[tn, fp], [fn, tp]], "roc": roc}


def quality_gate(results: Sequence[Mapping[str, Any]], floors: Mapping[str, float]
                 ) -> tuple[bool, list[str]]:
    """Pass only if every result meets every floor; returns (passed, reasons).

    ``results`` are validation results (``{"setting": name, "pr_auc": .., ...}``);
    ``floors`` maps a metric to its minimum (``{"pr_auc": 0.5, "recall": 0.5}``). A result
    may carry ``"gate": [metric, ...]`` to be checked on those metrics only. Reasons list
    every failed check (``recent-24h: recall 0.31 < 0.5``).
    """
    if not results:
        return False, ["no validation results"]
    reasons = []
    for r in results:
        name = r.get("setting", "?")
        checked = r.get("gate") or list(floors)
        for metric in checked:
            if metric not in floors:
                continue
            if metric not in r:
                reasons.append(f"{name}: metric {metric!r} missing")
            elif float(r[metric]) < float(floors[metric]):
                reasons.append(f"{name}: {metric} {float(r[metric]):.3f} < {floors[metric]}")
    return not reasons, reasons


def save_model(model, path: str | Path) -> Path:
    """Save a scikit-learn model with skops (parents created)."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def load_model(path: str | Path):
    """Load a skops model file, refusing any type outside scikit-learn, numpy and scipy."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: model file not found") from exc
    except Exception as exc:
        raise ModelFileError(f"{path}: not a skops model file: {exc}") from exc
    bad = sorted(t for t in untrusted if not t.startswith(TRUSTED_PREFIXES))
    if bad:
        raise ModelFileError(f"{path}: model file holds untrusted types {bad}")
    return sio.load(path, trusted=list(untrusted))
