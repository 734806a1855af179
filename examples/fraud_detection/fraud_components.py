"""The fraud-detection pipeline's steps, as chute components.

Each function is self-contained, as a component must be: it runs alone in a fresh Python
(a stock image with ``chute[ml]`` installed, or chute's local workers) and imports what it
needs inside its body. The reusable parts live in the package: :mod:`chute.ml.datasets`
(the synthetic data), :mod:`chute.ml.tabular` (validated reading), :mod:`chute.ml.
classification` (metrics, gate, skops files), :mod:`chute.ml.tuning` and
:mod:`chute.ml.registry`. Tests call the plain functions (``component.fn``) on small data.
"""

from __future__ import annotations

from typing import NamedTuple

from chute.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output, component

PACKAGES = ["chute[ml]"]  # present locally; installed on a cluster's stock image

FEATURES = [f"V{i}" for i in range(1, 29)]
MODEL_FEATURES = [*FEATURES, "scaled_amount", "scaled_time"]
DEFAULT_SPACE = {  # bounded so that a trial fits in a few seconds on one core
    "n_estimators": {"type": "int", "low": 20, "high": 100, "step": 20},
    "max_depth": {"type": "int", "low": 4, "high": 14},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 10},
    "max_features": {"type": "categorical", "choices": ["sqrt", "log2"]},
    "max_samples": {"type": "float", "low": 0.1, "high": 0.4},
}
DEFAULT_SETTINGS = [
    {"name": "all-t0.2", "threshold": 0.2, "recent_hours": 0, "gate": ["pr_auc", "recall"]},
    {"name": "all-t0.5", "threshold": 0.5, "recent_hours": 0, "gate": ["pr_auc"]},
    {"name": "recent-24h-t0.2", "threshold": 0.2, "recent_hours": 24, "gate": ["pr_auc"]},
]


@component(packages=PACKAGES)
def ingest_csv(source: str, rows: int, fraud_rate: float, seed: int,
               transactions: Output[Dataset]) -> int:
    """Read transactions from a local or HTTP CSV; with no source, generate them (seeded)."""
    from chute.ml.datasets import COLUMNS, make_transactions
    from chute.ml.tabular import read_table

    if source:
        frame = read_table(source, COLUMNS, binary=["Class"])
        print(f"read {len(frame)} rows from {source}")
    else:
        frame = make_transactions(rows, fraud_rate, seed).astype("float64")
        print(f"no csv_source given: generated {len(frame)} synthetic rows (seed {seed})")
    frame.to_parquet(transactions.path, index=False)
    return len(frame)


@component(packages=PACKAGES)
def ingest_s3(bucket: str, prefix: str, endpoint: str, credentials_secret: str,
              transactions: Output[Dataset]) -> int:
    """Read every CSV/Parquet object under s3://bucket/prefix; no bucket: the source is off.

    Credentials come from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    e.g. set from a Kubernetes secret on a cluster) or else from the chute secret named by
    ``credentials_secret`` (keys ``access_key`` and ``secret_key``); never from the spec.
    """
    import os

    from chute.ml.datasets import COLUMNS
    from chute.ml.tabular import empty_frame, read_prefix

    if not bucket:
        print("S3 source off: no s3_bucket given")
        empty_frame(COLUMNS).to_parquet(transactions.path, index=False)
        return 0
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret) and credentials_secret:
        from chute.secrets import SecretStore

        store = SecretStore()
        key = store.get(credentials_secret, "access_key")
        secret = store.get(credentials_secret, "secret_key")
    options = {"key": key, "secret": secret, "anon": not key}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    url = f"s3://{bucket}/{prefix.strip('/')}"
    frame, sources = read_prefix(url, COLUMNS, binary=["Class"], storage_options=options)
    print(f"read {len(frame)} rows from {len(sources)} object(s) under {url}")
    frame.to_parquet(transactions.path, index=False)
    return len(frame)


class TransformOutputs(NamedTuple):
    """transform's output parameters (the step returns a plain tuple in this order: the
    class exists only where the pipeline is compiled, not in the step)."""

    digest: str
    scaler: dict
    stats: dict


@component(packages=PACKAGES)
def transform(csv_data: Input[Dataset], s3_data: Input[Dataset], test_size: float, seed: int,
              train: Output[Dataset], test: Output[Dataset]) -> TransformOutputs:
    """Merge both sources, clean, split (stratified), scale Amount and Time, write Parquet.

    Cleaning drops incomplete rows, negative amounts and exact duplicates (the two sources
    may overlap). Scaling is fitted on the training split only: log-Amount is centred on
    its median and divided by its IQR, Time is mapped to [0, 1]. The raw columns stay, for
    slicing by time. ``digest`` is the content digest of the merged data.
    """
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from chute.ml.tabular import DataError, frame_digest

    frames = [f for f in (pd.read_parquet(csv_data.path), pd.read_parquet(s3_data.path))
              if len(f)]
    if not frames:
        raise DataError("transform: no transactions, every source is empty")
    merged = pd.concat(frames, ignore_index=True)
    rows_in = len(merged)
    merged = merged.dropna()
    incomplete = rows_in - len(merged)
    negative = int((merged["Amount"] < 0).sum())
    merged = merged[merged["Amount"] >= 0]
    before = len(merged)
    merged = merged.drop_duplicates()
    duplicates = before - len(merged)
    merged = merged.sort_values("Time", kind="stable").reset_index(drop=True)
    counts = merged["Class"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise DataError("transform: need at least 2 transactions of each class to split")
    tr, te = train_test_split(merged, test_size=test_size, stratify=merged["Class"],
                              random_state=seed)
    tr, te = tr.sort_index(), te.sort_index()

    log_amount = np.log1p(tr["Amount"].to_numpy())
    q1, median, q3 = np.percentile(log_amount, [25, 50, 75])
    scaler = {"amount_median": float(median), "amount_iqr": float(max(q3 - q1, 1e-9)),
              "time_min": float(tr["Time"].min()),
              "time_span": float(max(tr["Time"].max() - tr["Time"].min(), 1.0))}
    for frame, out in ((tr, train), (te, test)):
        frame = frame.copy()
        frame["scaled_amount"] = ((np.log1p(frame["Amount"]) - scaler["amount_median"])
                                  / scaler["amount_iqr"])
        frame["scaled_time"] = (frame["Time"] - scaler["time_min"]) / scaler["time_span"]
        frame.reset_index(drop=True).to_parquet(out.path, index=False)
    stats = {"rows_in": rows_in, "incomplete": incomplete, "negative_amount": negative,
             "duplicates": duplicates, "rows": len(merged), "frauds": int(counts.get(1, 0)),
             "train_rows": len(tr), "test_rows": len(te)}
    print(f"transform: {stats}")
    return frame_digest(merged), scaler, stats  # in TransformOutputs' order


@component(packages=PACKAGES, cache=False)
def decide(mode: str, model_name: str, digest: str) -> bool:
    """Whether to tune: ``always``/``never``, or ``auto``: when the data changed.

    ``auto`` tunes when no version of the model is registered (outside ``archived``) or the
    newest one was trained on data with another digest.
    """
    from chute.ml.registry import Registry

    if mode in ("always", "never"):
        print(f"tune={mode}")
        return mode == "always"
    registry = Registry.open()
    try:
        published = None
        for version in registry.list(model_name) if registry.find(model_name) else []:
            if version.stage != "archived":
                published = version
                break
    finally:
        registry.store.dispose()
    if published is None:
        print(f"tune: no published version of {model_name!r} yet")
        return True
    seen = published.data_digests.get("data")
    changed = seen != digest
    print(f"tune: data {'changed' if changed else 'unchanged'} since {model_name} "
          f"v{published.version} ({seen} -> {digest})")
    return changed


@component(packages=PACKAGES, cache=False)
def tune_ask(model_name: str, run: str, round_index: int, trials: int, space: dict,
             seed: int) -> list[dict]:
    """Ask the study of this run for one round of trial suggestions (a JSON list)."""
    from chute.ml import tuning

    suggestions = tuning.ask(f"{model_name}-{run}", trials, space,
                             round_key=f"{run}/round-{round_index}", seed=seed)
    print(f"round {round_index}: trials {[s['trial'] for s in suggestions]}")
    return suggestions


@component(packages=PACKAGES, cache=False)
def tune_trial(trial: dict, train: Input[Dataset], seed: int) -> dict:
    """Fit a forest with the trial's params on 75 % of train; PR-AUC on the other 25 %."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import train_test_split

    features = [f"V{i}" for i in range(1, 29)] + ["scaled_amount", "scaled_time"]
    frame = pd.read_parquet(train.path)
    fit, held = train_test_split(frame, test_size=0.25, stratify=frame["Class"],
                                 random_state=seed)
    p = dict(trial["params"])
    model = RandomForestClassifier(
        n_estimators=int(p["n_estimators"]), max_depth=int(p["max_depth"]) or None,
        min_samples_leaf=int(p["min_samples_leaf"]), max_features=p["max_features"],
        max_samples=float(p["max_samples"]), class_weight="balanced_subsample",
        random_state=seed, n_jobs=1)
    model.fit(fit[features].to_numpy(), fit["Class"].astype(int).to_numpy())
    scores = model.predict_proba(held[features].to_numpy())[:, 1]
    value = float(average_precision_score(held["Class"].astype(int), scores))
    print(f"trial {trial['trial']}: {p} -> PR-AUC {value:.4f}")
    return {"trial": trial["trial"], "value": value}


@component(packages=PACKAGES, cache=False)
def tune_tell(model_name: str, run: str, results: list[dict]) -> dict:
    """Tell the study the round's results; returns the best trial so far."""
    from chute.ml import tuning

    summary = tuning.tell(f"{model_name}-{run}", results)
    print(f"told {summary['told']} (failed {summary['failed']}); best: {summary['best']}")
    return summary["best"] or {}


class TrainOutputs(NamedTuple):
    """train's output parameters (returned as a plain tuple in this order)."""

    params: dict
    tuned_trials: int


@component(packages=PACKAGES)
def train(train_data: Input[Dataset], test_data: Input[Dataset], tuned: bool,
          model_name: str, run: str, n_estimators: int, max_depth: int,
          min_samples_leaf: int, max_samples: float, threshold: float, seed: int,
          model: Output[Model], metrics: Output[Metrics],
          curves: Output[ClassificationMetrics]) -> TrainOutputs:
    """Train a class-weighted random forest (tuned params if tuned), save it with skops.

    Logs ROC-AUC, PR-AUC, precision and recall at ``threshold`` on the test split, and the
    confusion matrix and ROC curve. ``max_depth`` 0 means unlimited.
    """
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from chute.ml.classification import evaluate_binary, save_model

    params = {"n_estimators": n_estimators, "max_depth": max_depth,
              "min_samples_leaf": min_samples_leaf, "max_features": "sqrt",
              "max_samples": max_samples}
    trials = 0
    if tuned:
        from chute.ml import tuning

        best = tuning.best(f"{model_name}-{run}")
        params.update(best["params"])
        trials = best["trials"]
        print(f"using tuned params of trial {best['trial']} (PR-AUC {best['value']:.4f})")
    features = [f"V{i}" for i in range(1, 29)] + ["scaled_amount", "scaled_time"]
    frame = pd.read_parquet(train_data.path)
    max_samples_ = float(params["max_samples"])
    forest = RandomForestClassifier(
        n_estimators=int(params["n_estimators"]), max_depth=int(params["max_depth"]) or None,
        min_samples_leaf=int(params["min_samples_leaf"]),
        max_features=params["max_features"],
        max_samples=max_samples_ if 0 < max_samples_ < 1 else None,
        class_weight="balanced_subsample", random_state=seed, n_jobs=2)
    forest.fit(frame[features].to_numpy(), frame["Class"].astype(int).to_numpy())
    save_model(forest, model.path)
    model.framework = "scikit-learn"

    test = pd.read_parquet(test_data.path)
    result = evaluate_binary(test["Class"], forest.predict_proba(test[features].to_numpy())[:, 1],
                             threshold)
    for name in ("roc_auc", "pr_auc", "precision", "recall", "f1"):
        metrics.log_metric(name, round(result["metrics"][name], 6))
    curves.log_confusion_matrix(["legit", "fraud"], result["confusion"])
    roc = result["roc"]
    curves.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    print(f"train: {params} -> {result['metrics']}")
    return params, trials  # in TrainOutputs' order


@component(packages=PACKAGES)
def validate(setting: dict, model: Input[Model], test_data: Input[Dataset],
             metrics: Output[Metrics]) -> dict:
    """Score the test split under one setting (a threshold, optionally the last N hours)."""
    import pandas as pd

    from chute.ml.classification import evaluate_binary, load_model

    features = [f"V{i}" for i in range(1, 29)] + ["scaled_amount", "scaled_time"]
    test = pd.read_parquet(test_data.path)
    hours = float(setting.get("recent_hours", 0) or 0)
    if hours > 0:
        test = test[test["Time"] >= test["Time"].max() - hours * 3600.0]
    forest = load_model(model.path)
    result = evaluate_binary(test["Class"], forest.predict_proba(test[features].to_numpy())[:, 1],
                             float(setting["threshold"]))
    m = result["metrics"]
    for name in ("roc_auc", "pr_auc", "precision", "recall", "f1"):
        metrics.log_metric(name, round(m[name], 6))
    metrics.log_metric("rows", m["rows"])
    print(f"validate {setting['name']}: {m}")
    return {"setting": setting["name"], "gate": list(setting.get("gate") or []), **m}


@component(packages=PACKAGES, cache=False)
def publish(results: list[dict], model: Input[Model], model_name: str, min_pr_auc: float,
            min_recall: float, digest: str, params: dict, scaler: dict, stage: str,
            workflow_uid: str, workflow_name: str) -> int:
    """Quality gate on the validation results; if it passes, register a new version.

    The model file goes to the artifact repository under ``models/<name>/<workflow uid>/``
    (outside the per-run prefixes that artifact GC removes) and the version records the
    metrics of every setting, the params, the data digest and the run. If the gate fails
    the step fails with every reason, and nothing is stored.
    """
    import os

    from chute.artifacts import ArtifactRepository
    from chute.ml.classification import quality_gate
    from chute.ml.registry import Registry

    floors = {"pr_auc": min_pr_auc, "recall": min_recall}
    passed, reasons = quality_gate(results, floors)
    if not passed:
        raise SystemExit("quality gate failed, nothing published: " + "; ".join(reasons))
    repo = ArtifactRepository.from_settings()
    key = f"models/{model_name}/{workflow_uid}/model.skops"
    repo.put_file(model.path, key)
    metrics = {r["setting"]: {k: r[k] for k in ("roc_auc", "pr_auc", "precision", "recall",
                                                "f1", "threshold", "rows")}
               for r in results}
    first = results[0]
    metrics.update({k: first[k] for k in ("roc_auc", "pr_auc", "precision", "recall")})
    registry = Registry.open()
    try:
        version = registry.register_version(
            model_name, artifact_uri=f"{repo.uri.rstrip('/')}/{key}", metrics=metrics,
            params={**params, "scaler": scaler}, data_digests={"data": digest},
            workflow_uid=workflow_uid, workflow_name=workflow_name,
            node_id=os.environ.get("ARGO_NODE_ID") or f"{workflow_name}.publish",
            stage=stage, description=f"gate: {floors}")
    finally:
        registry.store.dispose()
    print(f"published {model_name} version {version.version} ({stage}): "
          f"PR-AUC {first['pr_auc']:.4f}, recall {first['recall']:.4f}; "
          f"see `chute models get {model_name} {version.version}`")
    return version.version
