"""Binary classification metrics, the quality gate and skops model files."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")

from chute.ml.classification import (
    ModelFileError,
    evaluate_binary,
    load_model,
    quality_gate,
    save_model,
)


def test_metrics_at_a_threshold():
    y = [0, 0, 0, 0, 1, 1]
    scores = [0.1, 0.2, 0.6, 0.3, 0.7, 0.4]
    r = evaluate_binary(y, scores, threshold=0.5)
    assert r["confusion"] == [[3, 1], [1, 1]]  # tn fp / fn tp
    m = r["metrics"]
    assert (m["precision"], m["recall"]) == (0.5, 0.5)
    assert m["roc_auc"] == pytest.approx(7 / 8)  # 7 of 8 (pos, neg) pairs ordered right
    assert 0 < m["pr_auc"] < 1 and (m["rows"], m["positives"]) == (6, 2)
    roc = r["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and max(roc["thresholds"]) <= 1.0
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])


def test_roc_is_thinned_and_one_class_is_not_an_error():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    r = evaluate_binary(y, rng.uniform(size=5000))
    assert len(r["roc"]["fpr"]) <= 101
    single = evaluate_binary([0, 0, 0], [0.1, 0.9, 0.2], 0.5)
    assert single["metrics"]["roc_auc"] == 0.0 and single["confusion"] == [[2, 1], [0, 0]]


def test_gate_passes_only_when_every_checked_floor_holds():
    floors = {"pr_auc": 0.5, "recall": 0.5}
    ok = [{"setting": "a", "pr_auc": 0.8, "recall": 0.7},
          {"setting": "b", "pr_auc": 0.6, "recall": 0.1, "gate": ["pr_auc"]}]
    assert quality_gate(ok, floors) == (True, [])
    bad = ok + [{"setting": "c", "pr_auc": 0.2, "recall": 0.3}]
    passed, reasons = quality_gate(bad, floors)
    assert not passed
    assert reasons == ["c: pr_auc 0.200 < 0.5", "c: recall 0.300 < 0.5"]
    assert quality_gate([], floors) == (False, ["no validation results"])


def test_skops_round_trip_and_refusals(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(1).normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    path = save_model(model, tmp_path / "m" / "model.skops")
    again = load_model(path)
    assert (again.predict_proba(x) == model.predict_proba(x)).all()
    assert path.read_bytes()[:2] == b"PK"  # a zip of JSON + arrays, not a pickle stream
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "none.skops")
    (tmp_path / "junk.skops").write_bytes(b"\x80\x04junk")  # a pickle header
    with pytest.raises(ModelFileError, match="not a skops model file"):
        load_model(tmp_path / "junk.skops")


def test_untrusted_types_are_refused(tmp_path):
    import skops.io as sio

    path = tmp_path / "odd.skops"
    sio.dump({"f": Odd()}, path)
    with pytest.raises(ModelFileError, match="untrusted types"):
        load_model(path)


class Odd:
    """A class outside scikit-learn and numpy: loading it could run its code."""

    def __init__(self):
        self.x = 1
