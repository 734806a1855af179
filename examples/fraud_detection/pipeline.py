"""Fraud detection on credit-card transactions: ingest, transform, tune, train, validate,
publish. The reference pipeline of chute (``chute run examples/fraud_detection/pipeline.py``).

::

    ingest_csv ─┐                          ┌─ If tune: round 0: ask ─> ParallelFor trials ─> tell
    ingest_s3 ──┴─> transform ─> decide ───┤           round 1: ask ─> ParallelFor trials ─> tell
                                           └─> train ─> ParallelFor settings: validate ─> publish

* ``ingest_csv`` reads ``csv_source`` (a path or ``https://`` URL of the Kaggle
  ``creditcard.csv`` or any file with its columns); when it is empty the step generates
  ``rows`` synthetic transactions (deterministic for ``seed``).
* ``ingest_s3`` reads every CSV/Parquet object under ``s3://s3_bucket/s3_prefix`` at
  ``s3_endpoint`` with the credentials of the chute secret ``s3_secret`` (keys
  ``access_key``, ``secret_key``); with no bucket (the default) this source is off.
* ``decide`` tunes when ``tune`` is ``always``, never when ``never``, and with ``auto``
  when the data's digest differs from the one the newest published model was trained on.
* Tuning is an Optuna study in the metadata store (:mod:`chute.ml.tuning`): ``ROUNDS``
  rounds of ``TRIALS_PER_ROUND`` trials, each trial a parallel step.
* ``publish`` registers a new version of ``model_name`` in the model registry (stage
  ``stage``) only if every validation setting passes the gate (``min_pr_auc``, and
  ``min_recall`` where the setting gates recall); otherwise the run fails with the reasons.
"""

from __future__ import annotations

from typing import Literal

from fraud_components import (  # beside this file; chute's loader puts it on sys.path
    DEFAULT_SETTINGS,
    DEFAULT_SPACE,
    decide,
    ingest_csv,
    ingest_s3,
    publish,
    train,
    transform,
    tune_ask,
    tune_tell,
    tune_trial,
    validate,
)

from chute.dsl import (
    WORKFLOW_NAME,
    WORKFLOW_UID,
    Collected,
    If,
    ParallelFor,
    pipeline,
)

ROUNDS = 2
TRIALS_PER_ROUND = 4


def build(rounds: int = ROUNDS, trials_per_round: int = TRIALS_PER_ROUND):
    """The pipeline with ``rounds`` tuning rounds of ``trials_per_round`` parallel trials."""

    @pipeline(name="fraud-detection",
              description="Credit-card fraud: ingest, transform, tune, train, validate, publish.")
    def fraud_detection(
        csv_source: str = "",
        rows: int = 60000,
        fraud_rate: float = 0.0017,
        seed: int = 7,
        s3_bucket: str = "",
        s3_prefix: str = "transactions/",
        s3_endpoint: str = "",
        s3_secret: str = "fraud-s3",
        tune: Literal["auto", "always", "never"] = "auto",
        search_space: dict = DEFAULT_SPACE,
        n_estimators: int = 100,
        max_depth: int = 0,
        min_samples_leaf: int = 5,
        max_samples: float = 0.3,
        threshold: float = 0.2,
        settings: list = DEFAULT_SETTINGS,
        min_pr_auc: float = 0.5,
        min_recall: float = 0.5,
        model_name: str = "fraud-detector",
        stage: Literal["none", "staging", "production"] = "staging",
    ):
        csv = ingest_csv(source=csv_source, rows=rows, fraud_rate=fraud_rate, seed=seed)
        s3 = ingest_s3(bucket=s3_bucket, prefix=s3_prefix, endpoint=s3_endpoint,
                       credentials_secret=s3_secret)
        data = transform(csv_data=csv.outputs["transactions"],
                         s3_data=s3.outputs["transactions"], test_size=0.25, seed=seed)
        decision = decide(mode=tune, model_name=model_name, digest=data.outputs["digest"])

        last_tell = None
        with If(decision.output == True):  # builds a condition on the step output
            for index in range(rounds):
                ask = tune_ask(model_name=model_name, run=WORKFLOW_UID, round_index=index,
                               trials=trials_per_round, space=search_space, seed=seed)
                if last_tell is not None:
                    ask.after(last_tell)
                with ParallelFor(ask.output, parallelism=trials_per_round) as trial:
                    scored = tune_trial(trial=trial, train=data.outputs["train"], seed=seed)
                last_tell = tune_tell(model_name=model_name, run=WORKFLOW_UID,
                                      results=Collected(scored.output))

        model = train(train_data=data.outputs["train"], test_data=data.outputs["test"],
                      tuned=decision.output, model_name=model_name, run=WORKFLOW_UID,
                      n_estimators=n_estimators, max_depth=max_depth,
                      min_samples_leaf=min_samples_leaf, max_samples=max_samples,
                      threshold=threshold, seed=seed)
        if last_tell is not None:
            model.after(last_tell)

        with ParallelFor(settings) as setting:
            checked = validate(setting=setting, model=model.outputs["model"],
                               test_data=data.outputs["test"])
        publish(results=Collected(checked.outputs["Output"]), model=model.outputs["model"],
                model_name=model_name, min_pr_auc=min_pr_auc, min_recall=min_recall,
                digest=data.outputs["digest"], params=model.outputs["params"],
                scaler=data.outputs["scaler"], stage=stage, workflow_uid=WORKFLOW_UID,
                workflow_name=WORKFLOW_NAME)

    return fraud_detection


fraud_detection = build()
