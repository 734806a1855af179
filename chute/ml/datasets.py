"""Small synthetic data sets for examples and tests (like ``sklearn.datasets.make_*``).

``make_transactions``: credit-card transactions shaped like the public Kaggle data set.

The real data (``creditcard.csv``: 284,807 rows over two days, columns ``Time``, ``V1`` ..
``V28``, ``Amount``, ``Class``; 492 frauds, about 0.17 %) cannot be fetched here, so this
module makes a stand-in with the same columns and types, the same class balance, and a
separability of the same kind: ``V1..V28`` look like PCA components (centred, variance
decreasing with the index), frauds are shifted on a few of them (the ones that separate
frauds in the real data: V3, V4, V10, V11, V12, V14, V17) with a wider spread, and a share
of frauds is "camouflaged" (shifted only slightly) so that no model is perfect. ``Amount``
is log-normal, ``Time`` spans two days in seconds with a day/night rhythm, rows are
sorted by ``Time``. The same seed gives the same rows, byte for byte.

The fraud-detection example (``examples/fraud_detection/data.py``) wraps this in a command
line; its pipeline steps import it, so it lives in the package a step has installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = [f"V{i}" for i in range(1, 29)]
COLUMNS = ["Time", *FEATURES, "Amount", "Class"]
TWO_DAYS = 2 * 24 * 3600
DEFAULT_ROWS = 60_000
DEFAULT_FRAUD_RATE = 0.0017
# fraud shift per component, in units of that component's standard deviation (signs as in
# the real data: frauds have low V3/V10/V12/V14/V17 and high V4/V11)
FRAUD_SHIFT = {"V3": -2.2, "V4": 2.4, "V10": -2.6, "V11": 2.0, "V12": -2.8,
               "V14": -3.2, "V17": -2.4, "V7": -1.2, "V16": -1.5, "V18": -1.0}
CAMOUFLAGED_SHARE = 0.25  # frauds whose shift is scaled down to 20 %: hard to catch


def _component_std() -> np.ndarray:
    """Standard deviations of V1..V28, decreasing like PCA components' (about 1.9 to 0.3)."""
    return np.linspace(1.9, 0.3, len(FEATURES))


def _times(rng: np.random.Generator, n: int, night_bias: bool) -> np.ndarray:
    """``n`` times in seconds over two days; fewer at night unless ``night_bias``."""
    t = rng.uniform(0, TWO_DAYS, size=3 * n + 16)
    hour = (t / 3600.0) % 24
    daylight = 0.55 + 0.45 * np.sin((hour - 8) / 24 * 2 * np.pi)  # peak mid-afternoon
    accept = 1.0 - 0.6 * daylight if night_bias else daylight
    keep = t[rng.uniform(size=t.size) < accept]
    while keep.size < n:  # rare: top up with plain uniform times
        keep = np.concatenate([keep, rng.uniform(0, TWO_DAYS, size=n)])
    return np.floor(keep[:n])


def make_transactions(rows: int = DEFAULT_ROWS, fraud_rate: float = DEFAULT_FRAUD_RATE,
             seed: int = 7, time_offset: float = 0.0) -> pd.DataFrame:
    """Make ``rows`` transactions with about ``fraud_rate`` frauds, deterministic for ``seed``.

    At least one fraud is made whenever ``rows >= 2`` and ``fraud_rate > 0``, so that tiny
    data sets still have both classes. ``time_offset`` shifts ``Time`` (seconds), to make a
    second, disjoint batch of transactions.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= fraud_rate < 1.0:
        raise ValueError(f"fraud_rate must be in [0, 1), got {fraud_rate}")
    rng = np.random.default_rng(seed)
    n_fraud = round(rows * fraud_rate)
    if fraud_rate > 0 and rows >= 2:
        n_fraud = max(1, n_fraud)
    n_legit = rows - n_fraud
    std = _component_std()

    legit = rng.standard_normal((n_legit, len(FEATURES))) * std
    fraud = rng.standard_normal((n_fraud, len(FEATURES))) * std * 1.6
    scale = np.where(rng.uniform(size=n_fraud) < CAMOUFLAGED_SHARE, 0.2, 1.0)
    for name, shift in FRAUD_SHIFT.items():
        j = FEATURES.index(name)
        fraud[:, j] += shift * std[j] * scale

    legit_amount = rng.lognormal(mean=3.0, sigma=1.3, size=n_legit)
    small = rng.uniform(size=n_fraud) < 0.6  # card testing: many tiny amounts
    fraud_amount = np.where(small, rng.lognormal(0.5, 1.0, n_fraud),
                            rng.lognormal(4.6, 1.0, n_fraud))

    frame = pd.DataFrame(np.vstack([legit, fraud]), columns=FEATURES)
    frame.insert(0, "Time", np.concatenate([_times(rng, n_legit, False),
                                            _times(rng, n_fraud, True)]) + time_offset)
    frame["Amount"] = np.round(np.concatenate([legit_amount, fraud_amount]), 2)
    frame["Class"] = np.concatenate([np.zeros(n_legit, dtype=np.int64),
                                     np.ones(n_fraud, dtype=np.int64)])
    order = np.lexsort((rng.uniform(size=rows), frame["Time"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)[COLUMNS]


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as a CSV with the Kaggle file's columns and float formatting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6f")
    return path
