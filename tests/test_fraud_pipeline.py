"""The fraud-detection pipeline end to end: `chute run` on the embedded defaults.

Each test runs ``chute run examples/fraud_detection/pipeline.py`` in a subprocess with its
own CHUTE_HOME (SQLite + local artifact directory), then reads the run back from the
metadata store and the model registry.

The PR-AUC floor (``PR_AUC_FLOOR`` = 0.6) for the published model on the test split: the
generated data (60,000 rows, seed 7, 0.17 % frauds) puts 26 frauds in the 15,000-row test
split; frauds are shifted by 1-3 standard deviations on ten components and a quarter of
them only by a fifth of that, so a class-weighted forest reaches PR-AUC 0.75-0.80 (measured
0.797 with the default parameters), while a useless model scores near the fraud rate
(0.002; a single depth-1 stump about 0.02). 0.6 leaves room for the variance of 26
positives and for tuned parameters, and still fails any model that has not learnt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("optuna")

from chute.dsl.runtime import Dataset
from tests.test_fraud_components import C

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "examples" / "fraud_detection" / "pipeline.py"
PR_AUC_FLOOR = 0.6
# the tuning stage's DAG tasks (the trial loops are the first two ParallelFors)
TUNING_TASKS = {"tune-ask", "tune-tell", "tune-ask-2", "tune-tell-2", "for-loop", "for-loop-2"}

pytestmark = pytest.mark.timeout(900)


def run_pipeline(home: Path, *params: str, expect: str = "Succeeded") -> dict:
    """Run the pipeline with ``-p`` params; return the workflow as Argo JSON."""
    args = [sys.executable, "-m", "chute.cli.app", "run", str(PIPELINE)]
    for p in params:
        args += ["-p", p]
    env = dict(os.environ, CHUTE_HOME=str(home))
    env.pop("CHUTE_DATABASE_URL", None)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=800,
                          cwd=REPO, check=False)  # a Failed run is what some tests expect
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    name = last.split(":", 1)[0]
    got = subprocess.run([sys.executable, "-m", "chute.cli.app", "get", name, "-o", "json"],
                         env=env, capture_output=True, text=True, cwd=REPO, check=False)
    assert got.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    workflow = json.loads(got.stdout)
    assert workflow["status"]["phase"] == expect, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return workflow


def nodes_by_name(workflow: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for n in workflow["status"]["nodes"].values():
        out.setdefault(n["displayName"].split("(")[0], []).append(n)
    return out


def pods(workflow: dict, prefix: str) -> list[dict]:
    return [n for n in workflow["status"]["nodes"].values()
            if n["type"] == "Pod" and n["templateName"].startswith(prefix)]


def logs(home: Path, name: str) -> str:
    env = dict(os.environ, CHUTE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "chute.cli.app", "logs", name], env=env,
                          capture_output=True, text=True, cwd=REPO, check=False).stdout


def test_split(tmp_path) -> pd.DataFrame:
    """The test split the pipeline makes with its defaults, rebuilt with its own steps."""
    csv, s3 = Dataset(path=str(tmp_path / "csv")), Dataset(path=str(tmp_path / "s3"))
    C.ingest_csv.fn(source="", rows=60000, fraud_rate=0.0017, seed=7, transactions=csv)
    C.ingest_s3.fn(bucket="", prefix="", endpoint="", credentials_secret="", transactions=s3)
    test = Dataset(path=str(tmp_path / "test"))
    C.transform.fn(csv_data=csv, s3_data=s3, test_size=0.25, seed=7,
                   train=Dataset(path=str(tmp_path / "train")), test=test)
    return pd.read_parquet(test.path)


test_split.__test__ = False  # a helper, not a test


def test_tuning_off_publishes_a_model_that_scores_then_reruns_from_cache(chute_home, tmp_path):
    from sklearn.metrics import average_precision_score

    from chute.ml.classification import load_model
    from chute.ml.registry import Registry, download

    wf = run_pipeline(chute_home, "tune=never")
    # the tuning branch is skipped, every other step ran
    for n in wf["status"]["nodes"].values():
        if n["displayName"] in TUNING_TASKS:
            assert n["phase"] == "Skipped", n
    assert TUNING_TASKS <= {n["displayName"] for n in wf["status"]["nodes"].values()}
    assert not pods(wf, "tune-trial")
    assert len(pods(wf, "validate")) == len(C.DEFAULT_SETTINGS)
    assert all(n["phase"] == "Succeeded" for n in pods(wf, "publish"))

    registry = Registry.open()
    version = registry.get("fraud-detector")
    assert (version.version, version.stage) == (1, "staging")
    assert version.workflow_uid == wf["metadata"]["uid"]
    assert version.workflow_name == wf["metadata"]["name"]
    assert version.data_digests["data"].startswith("sha256:")
    assert {"n_estimators", "max_depth", "scaler"} <= set(version.params)
    assert set(version.metrics) >= {s["name"] for s in C.DEFAULT_SETTINGS}

    model = load_model(download(version, tmp_path / "model.skops"))
    test = test_split(tmp_path)
    scores = model.predict_proba(test[C.MODEL_FEATURES].to_numpy())[:, 1]
    pr_auc = average_precision_score(test["Class"].astype(int), scores)
    assert pr_auc > PR_AUC_FLOOR, pr_auc
    assert pr_auc == pytest.approx(version.metrics["all-t0.2"]["pr_auc"], abs=1e-6)

    # unchanged data and parameters: ingest and transform come from the cache, and `auto`
    # sees the published model was trained on this very data, so tuning is skipped
    again = run_pipeline(chute_home, "tune=auto")
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    store = open_store(load_settings())
    with store.read() as s:
        rows = {n.display_name: n for n in q.nodes_of(s, again["metadata"]["uid"])}
    assert rows["tune-ask"].phase == "Skipped"
    assert registry.get("fraud-detector").version == 2
    assert not rows["decide"].cached  # it reads the registry: never cached
    # transform reads the ingested artifacts: cached locally on their content digests
    for step in ("ingest-csv", "ingest-s3", "transform"):
        assert rows[step].cached, f"{step} was not served from the cache"


def test_tuning_on_runs_eight_trials_in_parallel_rounds(chute_home):
    from chute.ml import tuning
    from chute.ml.registry import Registry

    wf = run_pipeline(chute_home, "tune=always")
    trials = pods(wf, "tune-trial")
    assert len(trials) >= 8 and all(t["phase"] == "Succeeded" for t in trials)
    uid = wf["metadata"]["uid"]
    study = tuning.trials(f"fraud-detector-{uid}")
    assert len(study) == 8 and all(t["state"] == "COMPLETE" for t in study)
    rounds = {t["round"] for t in study}
    assert rounds == {f"{uid}/round-0", f"{uid}/round-1"}
    # trials of one round overlap in time (parallel); round 2 starts after round 1's tell
    by_round: dict[str, list[dict]] = {}
    for t in trials:
        trial_no = json.loads(next(p["value"] for p in t["inputs"]["parameters"]
                                   if p["name"] == "trial"))["trial"]
        by_round.setdefault("r0" if trial_no < 4 else "r1", []).append(t)
    first, second = by_round["r0"], by_round["r1"]
    # Argo's timestamps are whole seconds: overlapping trials may share one
    assert max(t["startedAt"] for t in first) <= min(t["finishedAt"] for t in first)
    tell = next(n for n in wf["status"]["nodes"].values()
                if n["displayName"] == "tune-tell" and n["type"] == "Pod")
    assert min(t["startedAt"] for t in second) >= tell["finishedAt"]
    version = Registry.open().get("fraud-detector")
    best = tuning.best(f"fraud-detector-{uid}")
    assert version.params["n_estimators"] == best["params"]["n_estimators"]
    assert version.metrics["all-t0.2"]["pr_auc"] > PR_AUC_FLOOR


def test_gate_fails_a_one_stump_forest_and_publishes_nothing(chute_home):
    from chute.ml.registry import Registry

    wf = run_pipeline(chute_home, "tune=never", "n_estimators=1", "max_depth=1",
                      "rows=20000", "fraud_rate=0.005", expect="Failed")
    (publish,) = pods(wf, "publish")
    assert publish["phase"] == "Failed"
    assert "quality gate failed, nothing published" in logs(chute_home, wf["metadata"]["name"])
    assert Registry.open().find("fraud-detector") is None
    assert not list((chute_home / "artifacts").rglob("models"))


@pytest.mark.parametrize("damage,message", [
    ("drop-amount", "missing column 'Amount'"),
    ("text-amount", "column 'Amount' is not numeric"),
    ("empty", "file is empty"),
])
def test_bad_data_fails_ingest_naming_the_column_or_file(chute_home, tmp_path, damage, message):
    from chute.ml.datasets import make_transactions, write_csv

    frame = make_transactions(500, 0.02, seed=1)
    path = tmp_path / f"{damage}.csv"
    if damage == "drop-amount":
        write_csv(frame.drop(columns=["Amount"]), path)
    elif damage == "text-amount":
        frame["Amount"] = frame["Amount"].astype(object)
        frame.loc[7, "Amount"] = "12.50 EUR"
        write_csv(frame, path)
    else:
        path.write_bytes(b"")
    wf = run_pipeline(chute_home, f"csv_source={path}", "tune=never", expect="Failed")
    (ingest,) = pods(wf, "ingest-csv")
    assert ingest["phase"] == "Failed"
    text = logs(chute_home, wf["metadata"]["name"])
    assert f"{path.name}: {message}" in text, text[-2000:]
    assert not pods(wf, "transform") or pods(wf, "transform")[0]["phase"] != "Succeeded"
