"""The synthetic transactions: Kaggle's columns, class balance, determinism, separability."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("sklearn")

from chute.ml.datasets import COLUMNS, TWO_DAYS, make_transactions, write_csv


def test_columns_balance_and_ranges():
    frame = make_transactions(20_000, seed=3)
    assert list(frame.columns) == COLUMNS
    assert frame["Class"].sum() == 34  # round(20000 * 0.0017)
    assert frame["Time"].between(0, TWO_DAYS).all() and frame["Time"].is_monotonic_increasing
    assert (frame["Amount"] >= 0).all()
    # V1..V28 look like PCA components: centred, variance decreasing with the index
    legit = frame[frame["Class"] == 0]
    assert abs(legit["V1"].mean()) < 0.05
    assert legit["V1"].std() > legit["V14"].std() > legit["V28"].std()
    # a day/night rhythm: fewer legit transactions at 3-5 am than at 1-3 pm
    hour = (legit["Time"] / 3600) % 24
    assert hour.between(13, 15).sum() > 2 * hour.between(3, 5).sum()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = write_csv(make_transactions(3000, seed=11), tmp_path / "a.csv").read_bytes()
    b = write_csv(make_transactions(3000, seed=11), tmp_path / "b.csv").read_bytes()
    c = write_csv(make_transactions(3000, seed=12), tmp_path / "c.csv").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest() != hashlib.sha256(c).digest()


def test_tiny_sets_keep_both_classes_and_bad_args_fail():
    assert make_transactions(10, seed=1)["Class"].tolist().count(1) == 1
    with pytest.raises(ValueError, match="fraud_rate"):
        make_transactions(10, fraud_rate=1.5)
    with pytest.raises(ValueError, match="rows"):
        make_transactions(-1)


def test_separable_but_not_trivially():
    """A forest separates frauds well (PR-AUC in the real data's range), not perfectly."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import train_test_split

    frame = make_transactions(30_000, fraud_rate=0.01, seed=5)  # more frauds: a stable score
    x, y = frame.drop(columns=["Class"]), frame["Class"]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    model = RandomForestClassifier(n_estimators=30, max_depth=10, max_samples=0.3,
                                   n_jobs=2, random_state=0).fit(xtr, ytr)
    pr_auc = average_precision_score(yte, model.predict_proba(xte)[:, 1])
    assert 0.6 < pr_auc < 0.97, pr_auc
