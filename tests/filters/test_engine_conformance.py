"""Conformance: the MongoDB manual's documented examples, as test vectors (tests/filters/vectors/*.json).

Each vector file: ``{"operator": ..., "source": <manual URL>, "cases": [case, ...]}`` with
``case = {"name", "docs", "pipeline", "expected" | "error", "unordered"?}`` in MongoDB extended
JSON (parsed with bson.json_util, as Kowalski parses stored filters).  ``error`` is a substring
of the FilterCompileError / FilterRuntimeError message; ``error_kind`` is "compile" or "runtime".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import json_util

from mql import FilterCompileError, FilterRuntimeError, compile_pipeline

from . import same, same_unordered

VECTORS = Path(__file__).parent / "vectors"


def _load_cases():
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        spec = json_util.loads(path.read_text())
        for i, case in enumerate(spec["cases"]):
            cid = f"{path.stem}:{case.get('name', i)}"
            cases.append(pytest.param(case, spec.get("source", ""), id=cid))
    return cases


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
