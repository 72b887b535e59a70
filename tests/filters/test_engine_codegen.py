"""The generated-code tier gives exactly what the closure tier (the reference) gives.

Random expressions (the differential test's generator, plus nested loops, outer variables and
operators the generator falls back on) over random documents: same value, or the same
FilterRuntimeError message.
"""

from __future__ import annotations

import math
import random

import pytest

from mql import FilterRuntimeError
from mql.codegen import compile_fast
from mql.expressions import compile_expression

from .test_engine_differential import Gen

EXTRA = [
    {"$map": {"input": "$nums", "as": "v", "in": {"$toString": "$$v"}}},
    {"$map": {"input": "$nums", "as": "v", "in": {"$map": {"input": "$nums", "as": "w", "in": {"$subtract": ["$$v", "$$w"]}}}}},
    {"$let": {"vars": {"x": "$n"}, "in": {"$filter": {"input": "$nums", "as": "y", "cond": {"$gt": ["$$y", "$$x"]}}}}},
    {"$filter": {"input": "$nums", "as": "v", "cond": {"$gte": ["$$v", 1]}, "limit": 2}},
    {"$reduce": {"input": "$nums", "initialValue": {"s": 0, "m": None},
                 "in": {"s": {"$add": ["$$value.s", "$$this"]}, "m": {"$max": ["$$value.m", "$$this"]}}}},
    {"$reduce": {"input": "$arr", "initialValue": [], "in": {"$concatArrays": ["$$value", ["$$this"]]}}},
    {"$cond": [{"$isArray": "$arr"}, {"$size": "$arr"}, {"$ifNull": ["$a", "$b", "none"]}]},
    {"$and": ["$a", {"$or": ["$b", {"$not": ["$n"]}]}, {"$in": ["$str", ["ZTF18abc", "PGIR1"]]}]},
    {"$map": {"input": {"$ifNull": ["$nums", []]}, "in": {"$divide": ["$$this", {"$max": ["$n", 0.5]}]}}},
    {"k": "$s.x", "l": ["$nope", "$$ROOT.a", "$$CURRENT.b"], "m": {"$let": {"vars": {"r": "$$ROOT"}, "in": "$$r.s.y"}}},
    {"$anyElementTrue": {"$map": {"input": {"$ifNull": ["$nums", []]}, "as": "c", "in": {
        "$and": [{"$gt": [{"$abs": {"$subtract": ["$n", "$$c"]}}, 0.5]}, {"$gte": ["$$c", 1]}]}}}},
    {"$sum": {"$map": {"input": "$nums", "in": {"$multiply": ["$$this", 2]}}}},
    {"$lt": ["$a", None]}, {"$gte": ["$b", None]}, {"$ne": ["$s.x", None]}, {"$eq": [None, "$a"]},
    {"$in": ["$a", [1, 2.5, "a"]]}, {"$eq": ["$str", "PGIR1"]}, {"$gt": ["$n", 2]}, {"$lte": [3, "$n"]},
    {"$anyElementTrue": ["$arr"]}, {"$allElementsTrue": [{"$ifNull": ["$arr", []]}]}, {"$first": "$arr"},
    {"$last": "$nums"}, {"$arrayElemAt": ["$arr", "$a"]}, {"$arrayElemAt": ["$nums", -1]}, {"$isArray": "$s"},
    {"$avg": "$nums"}, {"$min": ["$a", "$n"]}, {"$max": "$arr"}, {"$type": "$s.nope"}, {"$literal": "$x"},
]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _eval(f, doc):
    try:
        return ("ok", f(doc, {"ROOT": doc}))
    except FilterRuntimeError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("seed", range(20))
def test_generated_code_equals_closures(seed):
    g = Gen(1000 + seed)
    docs = [g.doc(i) for i in range(12)]
    exprs = [g.expr() for _ in range(60)] + EXTRA
    r = random.Random(seed)
    for e in exprs:
        closure, fast = compile_expression(e), compile_fast(e)
        for doc in r.sample(docs, 6) if seed else docs:
            a, b = _eval(closure, doc), _eval(fast, doc)
            assert a[0] == b[0] and _same(a[1], b[1]), (e, doc, a, b, getattr(fast, "source", None))


def test_most_expressions_are_generated():
    g = Gen(7)
    exprs = [e for e in [g.expr(0) for _ in range(300)] + EXTRA
             if isinstance(e, dict) and not getattr(compile_expression(e), "is_const", False)]
    generated = sum(hasattr(compile_fast(e), "source") for e in exprs)
    assert generated >= 0.9 * len(exprs)
