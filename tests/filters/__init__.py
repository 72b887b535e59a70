"""Tests of the filter engine (mql) and shared comparison helpers."""

from __future__ import annotations

import decimal
import math

from bson import Decimal128


def _num(x):
    if isinstance(x, Decimal128):
        return x.to_decimal()
    return x


def same(a, b, path="$") -> str | None:
    """None when a and b are equal as BSON values (numbers numerically, doubles to 1e-9 relative)."""
    a, b = _num(a), _num(b)
    na = isinstance(a, (int, float, decimal.Decimal)) and not isinstance(a, bool)
    nb = isinstance(b, (int, float, decimal.Decimal)) and not isinstance(b, bool)
    if na and nb:
        if isinstance(a, decimal.Decimal) or isinstance(b, decimal.Decimal):
            da, db_ = decimal.Decimal(str(a)), decimal.Decimal(str(b))
            if da.is_nan() and db_.is_nan():
                return None
            return None if abs(da - db_) <= abs(db_) * decimal.Decimal("1e-12") else f"{path}: {a!r} != {b!r}"
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return None
        return None if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            r = same(a[k], b[k], f"{path}.{k}")
            if r:
                return r
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)} ({a!r} vs {b!r})"
        for i, (x, y) in enumerate(zip(a, b)):
            r = same(x, y, f"{path}[{i}]")
            if r:
                return r
        return None
    if type(a) is not type(b) and not (na or nb):
        if not (isinstance(a, str) and isinstance(b, str)):
            return f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def same_unordered(got: list, expected: list) -> str | None:
    if len(got) != len(expected):
        return f"{len(got)} documents != {len(expected)}: {got!r}"
    rest = list(expected)
    for g in got:
        for i, e in enumerate(rest):
            if same(g, e) is None:
                del rest[i]
                break
        else:
            return f"unexpected document {g!r}; expected one of {rest!r}"
    return None
