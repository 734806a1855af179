"""Make synthetic credit-card transactions (the Kaggle ``creditcard.csv`` columns) as CSV.

The generator itself is :func:`chute.ml.datasets.make_transactions` (pipeline steps import
it, so it lives in the installed package); this is its command line::

    python examples/fraud_detection/data.py --rows 60000 --seed 7 -o transactions.csv

The same seed gives the same file, byte for byte. To use the real data instead, download
``creditcard.csv`` from Kaggle and pass its path (or an ``https://`` URL) as the pipeline's
``csv_source`` parameter.
"""

from __future__ import annotations

import argparse

from chute.ml.datasets import DEFAULT_FRAUD_RATE, DEFAULT_ROWS, make_transactions, write_csv


def main(argv: list[str] | None = None) -> int:
    """Generate transactions and write them as CSV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--fraud-rate", type=float, default=DEFAULT_FRAUD_RATE)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-offset", type=float, default=0.0,
                        help="shift Time by this many seconds (a later, disjoint batch)")
    parser.add_argument("-o", "--output", default="transactions.csv")
    args = parser.parse_args(argv)
    frame = make_transactions(args.rows, args.fraud_rate, args.seed, args.time_offset)
    path = write_csv(frame, args.output)
    print(f"wrote {len(frame)} rows ({int(frame['Class'].sum())} frauds) to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
