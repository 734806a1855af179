"""Every step of the fraud-detection pipeline, called as a plain function on small data.

The components' functions (``component.fn``) get the same artifact objects the step
runtime hands them, with paths under tmp_path; the registry and the tuning study live in
a real SQLite file under the test's CHUTE_HOME.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("optuna")

from chute.dsl.runtime import ClassificationMetrics, Dataset, Metrics, Model
from chute.ml.datasets import make_transactions, write_csv
from chute.ml.tabular import DataError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fraud_detection"


def _load_components():
    if "fraud_components" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fraud_components",
                                                      EXAMPLE / "fraud_components.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["fraud_components"] = module
        spec.loader.exec_module(module)
    return sys.modules["fraud_components"]


C = _load_components()
SMALL = {"rows": 6000, "fraud_rate": 0.02, "seed": 3}  # 120 frauds: stable metrics, fast


def art(cls, tmp_path, name):
    return cls(name=name, path=str(tmp_path / name))


@pytest.fixture
def prepared(tmp_path, chute_home):
    """Ingested and transformed small data: (outputs of transform, train, test)."""
    csv = art(Dataset, tmp_path, "csv")
    assert C.ingest_csv.fn(source="", transactions=csv, **SMALL) == 6000
    s3 = art(Dataset, tmp_path, "s3")
    assert C.ingest_s3.fn(bucket="", prefix="p/", endpoint="", credentials_secret="",
                          transactions=s3) == 0
    train, test = art(Dataset, tmp_path, "train"), art(Dataset, tmp_path, "test")
    out = C.transform.fn(csv_data=csv, s3_data=s3, test_size=0.25, seed=3, train=train,
                         test=test)
    return out, train, test


def test_ingest_csv_generates_or_reads_and_names_bad_data(tmp_path):
    out = art(Dataset, tmp_path, "gen")
    C.ingest_csv.fn(source="", transactions=out, **SMALL)
    generated = pd.read_parquet(out.path)
    path = write_csv(generated.drop(columns=["Amount"]), tmp_path / "no-amount.csv")
    with pytest.raises(DataError, match=r"no-amount\.csv: missing column 'Amount'"):
        C.ingest_csv.fn(source=str(path), transactions=art(Dataset, tmp_path, "x"), **SMALL)
    good = write_csv(generated, tmp_path / "good.csv")
    again = art(Dataset, tmp_path, "again")
    assert C.ingest_csv.fn(source=str(good), transactions=again, **SMALL) == 6000
    pd.testing.assert_frame_equal(pd.read_parquet(again.path), generated, check_exact=False,
                                  atol=1e-6)  # the CSV keeps 6 decimals


def test_transform_merges_cleans_splits_and_scales(tmp_path, chute_home):
    frame = make_transactions(**SMALL).astype("float64")
    dirty = frame.copy()
    dirty.loc[5, "V3"] = float("nan")
    dirty.loc[6, "Amount"] = -1.0
    a, b = art(Dataset, tmp_path, "a"), art(Dataset, tmp_path, "b")
    dirty.to_parquet(a.path, index=False)
    frame.iloc[:1000].to_parquet(b.path, index=False)  # overlaps the first source
    train, test = art(Dataset, tmp_path, "train"), art(Dataset, tmp_path, "test")
    digest, scaler, stats = C.transform.fn(csv_data=a, s3_data=b, test_size=0.25, seed=3,
                                           train=train, test=test)
    assert stats["rows_in"] == 7000 and stats["incomplete"] == 1
    assert stats["negative_amount"] == 1 and stats["duplicates"] == 998  # rows 5, 6 differ
    tr, te = pd.read_parquet(train.path), pd.read_parquet(test.path)
    assert len(tr) + len(te) == stats["rows"] == 6000
    assert len(te) == 1500
    # stratified: both splits keep the fraud rate
    assert abs(tr["Class"].mean() - te["Class"].mean()) < 0.002
    assert {"scaled_amount", "scaled_time", "Time", "Amount"} <= set(tr.columns)
    assert tr["scaled_time"].between(0, 1).all()
    assert abs(tr["scaled_amount"].median()) < 0.01  # centred on the training median
    assert set(scaler) == {"amount_median", "amount_iqr", "time_min", "time_span"}
    assert digest.startswith("sha256:")
    # the same data gives the same digest; other data another
    again = C.transform.fn(csv_data=a, s3_data=b, test_size=0.25, seed=3,
                           train=art(Dataset, tmp_path, "t2"), test=art(Dataset, tmp_path, "e2"))
    assert again[0] == digest
    # rows 5 and 6 were dropped from the first source but come back clean from the
    # second: the merged data is exactly the clean data set
    assert stats["rows"] == len(frame)
    make_transactions(**{**SMALL, "seed": 4}).to_parquet(b.path, index=False)
    other = C.transform.fn(csv_data=b, s3_data=b, test_size=0.25, seed=3,
                           train=art(Dataset, tmp_path, "t3"), test=art(Dataset, tmp_path, "e3"))
    assert other[0] != digest


def test_transform_fails_when_every_source_is_empty(tmp_path):
    empty = art(Dataset, tmp_path, "empty")
    C.ingest_s3.fn(bucket="", prefix="", endpoint="", credentials_secret="",
                   transactions=empty)
    with pytest.raises(DataError, match="every source is empty"):
        C.transform.fn(csv_data=empty, s3_data=empty, test_size=0.25, seed=1,
                       train=art(Dataset, tmp_path, "t"), test=art(Dataset, tmp_path, "e"))


def test_decide(prepared, chute_home):
    from chute.ml.registry import Registry

    (digest, _, _), _, _ = prepared
    assert C.decide.fn(mode="always", model_name="m", digest=digest) is True
    assert C.decide.fn(mode="never", model_name="m", digest=digest) is False
    assert C.decide.fn(mode="auto", model_name="m", digest=digest) is True  # nothing published
    registry = Registry.open()
    registry.register_version("m", artifact_uri="file:///x", data_digests={"data": digest})
    assert C.decide.fn(mode="auto", model_name="m", digest=digest) is False
    assert C.decide.fn(mode="auto", model_name="m", digest="sha256:other") is True
    registry.promote("m", 1, "archived")  # an archived model does not count
    assert C.decide.fn(mode="auto", model_name="m", digest=digest) is True


def test_tuning_round_train_validate_publish(prepared, tmp_path, chute_home):
    from chute.ml import tuning
    from chute.ml.classification import load_model
    from chute.ml.registry import Registry, download

    (digest, scaler, _), train, test = prepared
    space = {**C.DEFAULT_SPACE, "n_estimators": {"type": "int", "low": 10, "high": 30}}
    asked = C.tune_ask.fn(model_name="m", run="uid-1", round_index=0, trials=3, space=space,
                          seed=3)
    assert [s["trial"] for s in asked] == [0, 1, 2]
    results = [C.tune_trial.fn(trial=s, train=train, seed=3) for s in asked]
    assert all(0 < r["value"] <= 1 for r in results)
    best = C.tune_tell.fn(model_name="m", run="uid-1", results=results)
    assert best["value"] == max(r["value"] for r in results)
    assert tuning.best("m-uid-1")["params"] == best["params"]

    model, metrics = art(Model, tmp_path, "model"), art(Metrics, tmp_path, "metrics")
    curves = art(ClassificationMetrics, tmp_path, "curves")
    params, trials = C.train.fn(train_data=train, test_data=test, tuned=True, model_name="m",
                                run="uid-1", n_estimators=50, max_depth=0, min_samples_leaf=5,
                                max_samples=0.3, threshold=0.2, seed=3, model=model,
                                metrics=metrics, curves=curves)
    assert trials == 3 and params["n_estimators"] == best["params"]["n_estimators"]
    assert set(metrics.metadata) == {"roc_auc", "pr_auc", "precision", "recall", "f1"}
    assert curves.metadata["confusionMatrix"]["annotationSpecs"][1] == {"displayName": "fraud"}
    assert len(curves.metadata["confidenceMetrics"]) > 2
    load_model(model.path)  # a safe skops file

    results = []
    for setting in C.DEFAULT_SETTINGS:
        m = art(Metrics, tmp_path, f"v-{setting['name']}")
        results.append(C.validate.fn(setting=setting, model=model, test_data=test, metrics=m))
        assert m.metadata["rows"] == results[-1]["rows"]
    recent = results[2]
    assert recent["setting"] == "recent-24h-t0.2" and 0 < recent["rows"] < results[0]["rows"]

    version = C.publish.fn(results=results, model=model, model_name="m", min_pr_auc=0.3,
                           min_recall=0.3, digest=digest, params=params, scaler=scaler,
                           stage="staging", workflow_uid="uid-1", workflow_name="fraud-abc")
    assert version == 1
    registered = Registry.open().get("m", 1)
    assert registered.stage == "staging" and registered.data_digests == {"data": digest}
    assert registered.metrics["all-t0.2"]["pr_auc"] == results[0]["pr_auc"]
    assert registered.params["scaler"] == scaler and registered.workflow_name == "fraud-abc"
    assert "/models/m/uid-1/model.skops" in registered.artifact_uri
    loaded = load_model(download(registered, tmp_path / "back.skops"))
    te = pd.read_parquet(test.path)
    assert loaded.predict_proba(te[C.MODEL_FEATURES].to_numpy()).shape == (len(te), 2)


def test_gate_failure_publishes_nothing(prepared, tmp_path, chute_home):
    from chute.ml.registry import Registry

    (digest, scaler, _), train, test = prepared
    model = art(Model, tmp_path, "model")
    params, _ = C.train.fn(train_data=train, test_data=test, tuned=False, model_name="m",
                           run="uid-2", n_estimators=1, max_depth=1, min_samples_leaf=1,
                           max_samples=0.3, threshold=0.2, seed=3, model=model,
                           metrics=art(Metrics, tmp_path, "m"),
                           curves=art(ClassificationMetrics, tmp_path, "c"))
    results = [C.validate.fn(setting=s, model=model, test_data=test,
                             metrics=art(Metrics, tmp_path, s["name"]))
               for s in C.DEFAULT_SETTINGS]
    with pytest.raises(SystemExit, match=r"quality gate failed, nothing published: "
                                         r"all-t0.2: pr_auc 0\.\d+ < 0.5"):
        C.publish.fn(results=results, model=model, model_name="m", min_pr_auc=0.5,
                     min_recall=0.5, digest=digest, params=params, scaler=scaler,
                     stage="staging", workflow_uid="uid-2", workflow_name="fraud-bad")
    assert Registry.open().find("m") is None
    assert not list((chute_home / "artifacts").rglob("*.skops"))
