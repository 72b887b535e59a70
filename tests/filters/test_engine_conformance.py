"""Conformance: the MongoDB manual's documented examples, as test vectors (tests/filters/vectors/*.json).

Each vector file: ``{"operator": ..., "source": <manual URL>, "cases": [case, ...]}`` with
``case = {"name", "docs", "pipeline", "expected" | "error", "unordered"?}`` in MongoDB extended
JSON (parsed with bson.json_util, as Kowalski parses stored filters).  ``error`` is a substring
of the FilterCompileError / FilterRuntimeError message; ``error_kind`` is "compile" or "runtime".
"""

from __future__ import annotations

import decimal
import math
from pathlib import Path

import pytest
from bson import Decimal128, json_util

from broker.filters import FilterCompileError, FilterRuntimeError, compile_pipeline

VECTORS = Path(__file__).parent / "vectors"


def _load_cases():
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        spec = json_util.loads(path.read_text())
        for i, case in enumerate(spec["cases"]):
            cid = f"{path.stem}:{case.get('name', i)}"
            cases.append(pytest.param(case, spec.get("source", ""), id=cid))
    return cases


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


@pytest.mark.parametrize("case,source", _load_cases())
def test_manual_example(case, source):
    docs = case.get("docs", [])
    if "error" in case:
        kind = case.get("error_kind", "runtime")
        exc_type = FilterCompileError if kind == "compile" else FilterRuntimeError
        with pytest.raises(exc_type) as info:
            compile_pipeline(case["pipeline"]).run(docs)
        assert case["error"] in str(info.value), f"{info.value} (source: {source})"
        return
    got = compile_pipeline(case["pipeline"]).run(docs)
    if case.get("unordered"):
        problem = same_unordered(got, case["expected"])
    else:
        problem = same(got, case["expected"])
    assert problem is None, f"{problem}\n got: {got!r}\n source: {source}"


def test_vectors_cover_the_required_operators():
    """Every stage and operator the engine must support has at least one documented example."""
    required = """$match $project $addFields $set $unset $unwind $group $sort $limit $skip $count $replaceRoot
    $replaceWith $facet $eq $ne $gt $gte $lt $lte $in $nin $and $or $nor $not $exists $type $regex $mod $all
    $elemMatch $size $expr $add $subtract $multiply $divide $abs $cmp $cond $ifNull $switch $filter $map $reduce
    $arrayElemAt $first $last $slice $concatArrays $indexOfArray $isArray $anyElementTrue $allElementsTrue
    $reverseArray $range $sortArray $zip $sum $avg $min $max $stdDevPop $stdDevSamp $sqrt $pow $exp $ln $log
    $log10 $floor $ceil $round $trunc $concat $substrCP $toLower $toUpper $strLenCP $split $regexMatch $convert
    $toDouble $toInt $toLong $toString $toBool $isNumber $literal $let""".split()
    covered = set()
    for path in VECTORS.glob("*.json"):
        spec = json_util.loads(path.read_text())
        covered.update(spec.get("covers", [spec.get("operator")]))
    missing = [op for op in required if op not in covered]
    assert not missing, f"no manual examples for {missing}"
