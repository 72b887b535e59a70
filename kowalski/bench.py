"""`kowalski bench ...`: benchmark commands that print figures (never timed assertions in tests).

Components add their own sub-commands through ``get_bench_subparsers``.
"""

from __future__ import annotations

import argparse

_BENCH_ATTR = "_kowalski_bench_subparsers"


def get_bench_subparsers(subparsers) -> argparse._SubParsersAction:
    """The sub-parsers of `kowalski bench`, creating the `bench` command once."""
    existing = getattr(subparsers, _BENCH_ATTR, None)
    if existing is not None:
        return existing
    bench = subparsers.add_parser("bench", help="benchmarks: print throughput and latency figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    setattr(subparsers, _BENCH_ATTR, bench_sub)
    return bench_sub


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) of a list of numbers, nearest-rank; nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]
