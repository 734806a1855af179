"""The S3 ingest step against a real S3 HTTP endpoint (moto's server), credentials from a
chute secret; wrong credentials and an empty prefix fail with a message naming the place."""

from __future__ import annotations

import io
import json

import pytest

pd = pytest.importorskip("pandas")

from chute.dsl.runtime import Dataset
from chute.ml.datasets import make_transactions
from chute.ml.tabular import DataError
from chute.secrets import SecretStore
from tests.test_fraud_components import C

pytest_plugins = ["tests.fixtures.s3"]
pytestmark = pytest.mark.s3


def _upload(s3, key: str, frame, fmt: str = "csv") -> None:
    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False)
    else:
        frame.to_parquet(buf, index=False)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=buf.getvalue())


def test_reads_every_object_under_the_prefix_with_secret_credentials(s3, chute_home, tmp_path):
    SecretStore().create("fraud-s3", {"access_key": s3.access_key, "secret_key": s3.secret_key})
    day1 = make_transactions(700, 0.02, seed=1)
    day2 = make_transactions(300, 0.02, seed=2, time_offset=172800)
    _upload(s3, "tx/2024-01-01.csv", day1)
    _upload(s3, "tx/2024-01-02.parquet", day2, "parquet")
    _upload(s3, "other/ignored.csv", day1)
    out = Dataset(name="t", path=str(tmp_path / "t.parquet"))
    rows = C.ingest_s3.fn(bucket=s3.bucket, prefix="tx/", endpoint=s3.url,
                          credentials_secret="fraud-s3", transactions=out)
    assert rows == 1000
    frame = pd.read_parquet(out.path)
    assert frame["Time"].max() >= 172800 and list(frame.columns)[-1] == "Class"


def test_wrong_credentials_and_empty_prefix_fail_clearly(s3, chute_home, tmp_path):
    SecretStore().create("bad-s3", {"access_key": s3.access_key, "secret_key": "WRONG-canary"})
    _upload(s3, "tx/a.csv", make_transactions(50, 0.1, seed=1))
    out = Dataset(name="t", path=str(tmp_path / "t.parquet"))
    with pytest.raises(DataError) as info:
        C.ingest_s3.fn(bucket=s3.bucket, prefix="tx/", endpoint=s3.url,
                       credentials_secret="bad-s3", transactions=out)
    assert f"s3://{s3.bucket}/tx" in str(info.value)
    assert "WRONG-canary" not in str(info.value)
    SecretStore().create("good-s3", {"access_key": s3.access_key, "secret_key": s3.secret_key})
    with pytest.raises(DataError, match=rf"s3://{s3.bucket}/nothing: no .csv or .parquet"):
        C.ingest_s3.fn(bucket=s3.bucket, prefix="nothing/", endpoint=s3.url,
                       credentials_secret="good-s3", transactions=out)


def test_bad_object_is_named_by_its_key(s3, chute_home, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)  # the cluster way: env from a secret
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    _upload(s3, "tx/bad.csv", make_transactions(50, 0.1, seed=1).drop(columns=["V4"]))
    with pytest.raises(DataError, match=rf"s3://{s3.bucket}/tx/bad.csv: missing column 'V4'"):
        C.ingest_s3.fn(bucket=s3.bucket, prefix="tx", endpoint=s3.url, credentials_secret="",
                       transactions=Dataset(name="t", path=str(tmp_path / "t.parquet")))


@pytest.mark.timeout(900)
def test_pipeline_merges_the_s3_batch_with_the_csv_source(s3, chute_home):
    """The whole pipeline with its S3 source on: credentials from the chute secret only."""
    from tests.test_fraud_pipeline import pods, run_pipeline

    SecretStore().create("fraud-s3", {"access_key": s3.access_key, "secret_key": s3.secret_key})
    batch = make_transactions(8000, 0.005, seed=21, time_offset=172800)
    _upload(s3, "transactions/day3.csv", batch)
    wf = run_pipeline(chute_home, "rows=20000", "fraud_rate=0.005", "tune=never",
                      f"s3_bucket={s3.bucket}", f"s3_endpoint={s3.url}", "min_pr_auc=0.0",
                      "min_recall=0.0")
    (ingest,) = pods(wf, "ingest-s3")
    outputs = {p["name"]: p["value"] for p in ingest["outputs"]["parameters"]}
    assert outputs["Output"] == "8000"
    (transform,) = pods(wf, "transform")
    stats = next(p["value"] for p in transform["outputs"]["parameters"] if p["name"] == "stats")
    assert '"rows": 28000' in stats.replace("'", '"')
    assert s3.secret_key not in json.dumps(wf)
