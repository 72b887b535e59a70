"""The engine's public API, its refusals, and MongoDB semantics that the manual's examples and the
differential test do not pin down (including the cases where the local database departs from
the manual: the engine follows the manual, see KNOWN_DB_DEVIATIONS in test_engine_differential).
"""

from __future__ import annotations

import copy
import datetime
import json
import re

import pytest
from bson import Decimal128, Int64, Regex, json_util

from mql import FilterCompileError, FilterRuntimeError, compile_pipeline, validate_pipeline
from mql import MISSING, compare, evaluate, type_name


def run(pipeline, docs):
    return compile_pipeline(pipeline).run(copy.deepcopy(docs))


def ev(expr, doc=None, **variables):
    return evaluate(expr, doc or {}, variables or None)


# --- API ------------------------------------------------------------------------------------

def test_passes_returns_the_first_output_document_or_none():
    f = compile_pipeline([{"$match": {"x": {"$gt": 1}}}, {"$project": {"_id": 0, "x": 1}}])
    assert f.passes({"_id": 1, "x": 2}) == {"x": 2}
    assert f.passes({"_id": 1, "x": 0}) is None
    g = compile_pipeline([{"$unwind": "$a"}, {"$sort": {"a": -1}}])
    assert g.passes({"a": [1, 3, 2]}) == {"a": 3}
    assert g.passes({"a": []}) is None


def test_pipelines_are_accepted_as_json_and_extended_json_strings():
    text = json_util.dumps([{"$match": {"n": {"$gt": Int64(5)}, "d": {"$lt": datetime.datetime(2024, 1, 1)}}}])
    assert '"$numberLong"' in text or '"$date"' in text
    f = compile_pipeline(text)
    assert f.passes({"n": 6, "d": datetime.datetime(2023, 1, 1)}) is not None
    assert f.passes({"n": 6, "d": datetime.datetime(2025, 1, 1)}) is None
    # Kowalski stores pipelines with json.dumps spacing
    assert compile_pipeline(json.dumps([{"$match": {"a": 1}}])).passes({"a": 1}) == {"a": 1}


def test_input_documents_are_never_modified():
    doc = {"_id": 1, "a": {"b": [1, {"c": 2}]}, "arr": [3, 1, 2], "s": "x"}
    snapshot = copy.deepcopy(doc)
    f = compile_pipeline([
        {"$addFields": {"a.z": 1, "a.b.y": 2, "n": {"$sortArray": {"input": "$arr", "sortBy": 1}}}},
        {"$set": {"arr": {"$reverseArray": "$arr"}}}, {"$unset": ["s", "a.b.c"]},
        {"$project": {"a": 1, "arr": 1, "n": 1}}, {"$unwind": {"path": "$arr", "includeArrayIndex": "i"}},
        {"$group": {"_id": None, "all": {"$push": "$$ROOT"}}},
    ])
    out = f.run([doc])
    assert doc == snapshot
    # "a.b.y" reaches into the array: the document element gains y, the scalar becomes {y: 2}
    assert out[0]["all"][0]["a"] == {"b": [{"y": 2}, {"y": 2}], "z": 1}


def test_validate_pipeline_accepts_the_reference_filters():
    reference = [{"$match": {"candidate.drb": {"$gt": 0.9999}, "cross_matches.CLU_20190625.0": {"$exists": False}}},
                 {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
                 {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}}]
    assert validate_pipeline(reference) is None  # accepted (a refusal raises FilterCompileError)
    # and it means what MongoDB makes of it: $avg over the array path ignores the point without rb
    f = compile_pipeline(reference)
    alert = {"_id": 7, "candid": 1, "objectId": "ZTF1", "candidate": {"drb": 0.99995}, "cross_matches": {"CLU_20190625": []},
             "prv_candidates": [{"rb": 0.5}, {"rb": 0.75}, {"jd": 1.0}]}
    assert f.passes(alert) == {"candid": 1, "objectId": "ZTF1", "annotations": {"author": "dd", "mean_rb": 0.625}}
    assert f.passes({**alert, "candidate": {"drb": 0.9999}}) is None  # $gt, not $gte
    assert f.passes({**alert, "cross_matches": {"CLU_20190625": [{"id": 1}]}}) is None
    assert f.passes({**alert, "prv_candidates": []})["annotations"] == {"author": "dd", "mean_rb": None}


@pytest.mark.parametrize("pipeline,message", [
    ([{"$match": {"$where": "this.a > 1"}}], "unsupported operator $where in stage 1 ($match): forbidden in filters"),
    ([{"$match": {}}, {"$lookup": {"from": "ZTF_alerts_aux", "localField": "objectId", "foreignField": "_id",
                                   "as": "aux"}}], "unsupported stage $lookup in stage 2: forbidden in filters"),
    ([{"$out": "x"}], "unsupported stage $out in stage 1: forbidden"),
    ([{"$merge": {"into": "x"}}], "unsupported stage $merge in stage 1: forbidden"),
    ([{"$unionWith": "x"}], "unsupported stage $unionWith in stage 1: forbidden"),
    ([{"$graphLookup": {}}], "unsupported stage $graphLookup in stage 1: forbidden"),
    ([{"$project": {"x": {"$function": {"body": "", "args": [], "lang": "js"}}}}],
     "unsupported operator $function in stage 1 ($project): forbidden"),
    ([{"$group": {"_id": 1, "x": {"$accumulator": {}}}}], "unsupported operator $accumulator in stage 1 ($group): forbidden"),
    ([{"$matc": {}}], "unsupported stage $matc in stage 1"),
    ([{"$match": {"a": 1}}, {"$addFields": {"d": {"$dateToString": {"date": "$d"}}}}],
     "unsupported operator $dateToString in stage 2 ($addFields)"),
    ([{"$match": {"a": {"$near": [0, 0]}}}], "unsupported operator $near in stage 1 ($match)"),
    ([{"$match": {"$text": {"$search": "x"}}}], "unsupported operator $text in stage 1 ($match)"),
    ([{"$facet": {"a": [{"$match": {"$expr": {"$foo": 1}}}]}}], "unsupported operator $foo"),
    ([{"$facet": {"a": [{"$lookup": {}}]}}], "forbidden"),
    ([], "pipeline must contain at least one stage"),
    ("not json", "pipeline is not valid (extended) JSON"),
    ([{"$match": {}, "$project": {"a": 1}}], "exactly one field"),
    ([{"$project": {}}], "at least one field"),
    ([{"$project": {"a": 1, "b": 0}}], "Cannot do exclusion on field b in inclusion projection"),
    ([{"$project": {"a": 0, "b": "$x"}}], "Cannot use expression other than $meta in exclusion projection"),
    ([{"$project": {"s": 0, "s.x": 0}}], "path collision"),
    ([{"$limit": 0}], "positive"),
    ([{"$skip": -1}], "non-negative"),
    ([{"$count": "$x"}], "$-prefixed"),
    ([{"$group": {"x": {"$sum": 1}}}], "must include an _id"),
    ([{"$unwind": "a"}], "prefixed with a '$'"),
    ([{"$match": {"a": {"$mod": [0, 1]}}}], "divisor cannot be 0"),
    ([{"$match": {"a": {"$regex": "("}}}], "invalid regular expression"),
    ([{"$match": {"$and": []}}], "non-empty array"),
    ([{"$project": {"x": {"$abs": [1, 2]}}}], "Expression $abs takes exactly 1 arguments. 2 were passed in."),
    ([{"$project": {"x": "$$nope"}}], "Use of undefined variable: nope"),
    ([{"$project": {"x": {"$map": {"input": [], "as": "Bad", "in": 1}}}}], "invalid character"),
    ([{"$project": {"x": {"$cond": {"if": 1, "then": 2}}}}], "Missing 'else' parameter to $cond"),
])
def test_refused_at_compile_time_naming_the_operator(pipeline, message):
    with pytest.raises(FilterCompileError) as info:
        validate_pipeline(pipeline)
    assert message in str(info.value)


def test_compile_error_carries_the_operator_and_stage():
    with pytest.raises(FilterCompileError) as info:
        compile_pipeline([{"$match": {"a": 1}}, {"$match": {"$where": "1"}}])
    assert (info.value.operator, info.value.stage_index, info.value.stage, info.value.forbidden) == \
        ("$where", 2, "$match", True)


@pytest.mark.parametrize("expr,doc,message", [
    ({"$sqrt": "$x"}, {"x": -1}, "$sqrt's argument must be greater than or equal to 0"),
    ({"$arrayElemAt": ["$x", 0]}, {"x": 5}, "$arrayElemAt's first argument must be an array, but is int"),
    ({"$divide": [1, "$x"]}, {"x": 0}, "can't $divide by zero"),
    ({"$mod": [1, "$x"]}, {"x": 0}, "can't $mod by 0"),
    ({"$log10": "$x"}, {"x": -2.5}, "$log10's argument must be a positive number, but is -2.5"),
    ({"$log": ["$x", 1]}, {"x": 10}, "$log's base must be a positive number not equal to 1, but is 1"),
    ({"$add": ["$x", 1]}, {"x": "a"}, "$add only supports numeric or date types, not string"),
    ({"$size": "$x"}, {}, "The argument to $size must be an array. Type of the argument was: missing"),
    ({"$map": {"input": "$x", "in": 1}}, {"x": 3}, "input to $map must be an array not int"),
    ({"$reduce": {"input": "$x", "initialValue": 0, "in": 1}}, {"x": "s"}, "be an array, found: string"),
    ({"$concatArrays": [[1], "$x"]}, {"x": 1}, "$concatArrays only supports arrays, not int"),
    ({"$strLenCP": "$x"}, {"x": 5}, "$strLenCP requires a string argument, found: int"),
    ({"$toInt": "$x"}, {"x": "1.5"}, "Failed to parse number '1.5'"),
    ({"$range": [0, "$x"]}, {"x": "a"}, "$range requires a numeric ending value"),
    ({"$switch": {"branches": [{"case": False, "then": 1}]}}, {}, "could not find a matching branch"),
    ({"$split": ["a", ""]}, {}, "$split requires a non-empty separator"),
])
def test_runtime_errors_like_mongodb(expr, doc, message):
    f = compile_pipeline([{"$project": {"r": expr}}])
    with pytest.raises(FilterRuntimeError) as info:
        f.run([doc])
    assert message in str(info.value)


def test_unexpected_python_errors_become_runtime_errors():
    f = compile_pipeline([{"$match": {"a": {"$gt": 1}}}, {"$project": {"x": {"$eq": ["$a", "$b"]}}}])
    with pytest.raises(FilterRuntimeError):
        f.passes({"a": 2, "b": object()})


# --- missing vs null, BSON order, numbers ---------------------------------------------------

def test_missing_is_not_null():
    assert ev({"$eq": ["$nope", None]}) is False
    assert ev({"$lte": ["$nope", None]}) is True  # missing sorts before null
    assert ev({"$type": "$nope"}) == "missing" and ev({"$type": "$n"}, {"n": None}) == "null"
    assert ev({"$ifNull": ["$nope", "$n", "x"]}, {"n": None}) == "x"
    assert ev({"$in": ["$nope", [None]]}) is False
    assert run([{"$match": {"a": None}}], [{"_id": 1}, {"_id": 2, "a": None}, {"_id": 3, "a": 0}]) == \
        [{"_id": 1}, {"_id": 2, "a": None}]
    assert run([{"$project": {"a": "$nope", "b": ["$nope"], "c": {"x": "$nope"}}}], [{"_id": 1}]) == \
        [{"_id": 1, "b": [None], "c": {}}]
    assert run([{"$group": {"_id": "$nope", "n": {"$sum": 1}}}], [{"a": 1}, {"a": None}]) == [{"_id": None, "n": 2}]


def test_bson_comparison_order_across_types():
    ordered = [None, -1, 2.5, Decimal128("3"), Int64(4), "", "a", {}, {"a": 1}, [], [1], b"\x00",
               __import__("bson").ObjectId("5ab9c3da31c2ab715d421285"), False, True, datetime.datetime(2000, 1, 1),
               Regex("a")]
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert (compare(a, b) > 0) == (i > j) and (compare(a, b) == 0) == (i == j), (a, b)
    assert compare(MISSING, None) < 0
    assert compare(float("nan"), float("-inf")) < 0 and compare(float("nan"), float("nan")) == 0
    docs = [{"_id": i, "v": v} for i, v in enumerate([True, "s", 1, None, {"x": 1}, [0, 5], 0.5])] + [{"_id": 99}]
    assert [d["_id"] for d in run([{"$sort": {"v": 1, "_id": 1}}], docs)] == [3, 99, 5, 6, 2, 1, 4, 0]
    assert [d["_id"] for d in run([{"$sort": {"v": -1, "_id": 1}}], docs)] == [0, 4, 1, 5, 2, 6, 3, 99]


def test_query_type_bracketing_and_nan():
    docs = [{"_id": 1, "a": 5}, {"_id": 2, "a": "5"}, {"_id": 3, "a": [1, "z"]}, {"_id": 4, "a": float("nan")}]
    assert [d["_id"] for d in run([{"$match": {"a": {"$gt": 2}}}], docs)] == [1]
    assert [d["_id"] for d in run([{"$match": {"a": {"$gt": "a"}}}], docs)] == [3]
    assert [d["_id"] for d in run([{"$match": {"a": float("nan")}}], docs)] == [4]
    assert [d["_id"] for d in run([{"$match": {"a": {"$lt": 10}}}], docs)] == [1, 3]


def test_numeric_types_are_numbers():
    doc = {"i": 2, "l": Int64(3), "d": 1.5, "m": Decimal128("0.25"), "big": 2 ** 40}
    assert ev({"$add": ["$i", "$l", "$d"]}, doc) == 6.5
    assert type_name(ev({"$add": ["$i", "$l"]}, doc)) == "long"
    assert type_name(ev({"$add": ["$i", "$i"]}, doc)) == "int"
    assert type_name(ev({"$multiply": ["$big", 2]}, doc)) == "long"
    assert type_name(ev({"$multiply": ["$big", "$big"]}, doc)) == "double"  # long overflow
    assert ev({"$add": ["$m", "$i"]}, doc) == Decimal128("2.25")
    assert ev({"$divide": ["$i", 4]}, doc) == 0.5
    assert ev({"$eq": ["$l", 3.0]}, doc) is True and ev({"$eq": ["$m", 0.25]}, doc) is True
    assert run([{"$match": {"m": 0.25, "l": 3, "big": {"$gt": 2 ** 39}}}], [doc]) != []
    assert ev({"$type": "$big"}, doc) == "long" and ev({"$type": "$i"}, doc) == "int"
    assert ev({"$sum": ["$i", "$l", "$m"]}, doc) == Decimal128("5.25")


# --- paths through arrays ---------------------------------------------------------------------

def test_expression_paths_through_arrays():
    doc = {"prv": [{"rb": 0.5, "m": {"x": 1}}, {"rb": 0.7}, {"no": 1}, 3, [{"rb": 0.9}]]}
    assert ev("$prv.rb", doc) == [0.5, 0.7, [0.9]]
    assert ev("$prv.m.x", doc) == [1, []]
    assert ev({"$avg": "$prv.rb"}, {"prv": [{"rb": 0.5}, {"rb": 0.7}, {}]}) == pytest.approx(0.6)
    assert ev("$prv.0", {"prv": [{"0": "x"}, "y"]}) == ["x"]  # numeric components are field names here
    assert ev({"$map": {"input": "$a", "as": "e", "in": "$$e.b.c"}}, {"a": [{"b": [{"c": 1}, {"c": 2}]}]}) == [[1, 2]]


def test_query_paths_through_arrays():
    docs = [{"_id": 1, "a": [{"b": 1}, {"b": [2, 3]}]}, {"_id": 2, "a": [{"c": 1}]}, {"_id": 3, "a": {"b": 3}},
            {"_id": 4, "a": [[{"b": 3}]]}, {"_id": 5, "a": [5]}]
    q = lambda query: [d["_id"] for d in run([{"$match": query}], docs)]  # noqa: E731
    assert q({"a.b": 3}) == [1, 3]
    assert q({"a.b": None}) == [2]
    assert q({"a.b": {"$exists": False}}) == [2, 4, 5]
    assert q({"a.1.b": 2}) == [1]
    assert q({"a.0.b": {"$exists": True}}) == [1, 4]
    assert q({"a.b": {"$size": 2}}) == [1]
    assert q({"a": {"$elemMatch": {"b": {"$gte": 1}}}}) == [1]


# --- variables --------------------------------------------------------------------------------

def test_root_current_remove_let_and_user_variables():
    doc = {"_id": 1, "a": {"b": 2}, "xs": [1, 2, 3]}
    out = run([{"$project": {
        "root": "$$ROOT.a.b", "cur": "$$CURRENT.a", "gone": "$$REMOVE",
        "cond": {"$cond": [{"$gt": ["$a.b", 5]}, 1, "$$REMOVE"]},
        "let": {"$let": {"vars": {"x": "$a.b", "y": 10}, "in": {"$let": {"vars": {"x": 1}, "in": {"$add": ["$$x", "$$y"]}}}}},
        "nested": {"$map": {"input": "$xs", "as": "i", "in": {"$map": {"input": "$xs", "as": "j",
                                                                      "in": {"$multiply": ["$$i", "$$j"]}}}}},
        "this": {"$filter": {"input": "$xs", "cond": {"$gt": ["$$this", "$$ROOT.a.b"]}}},
        "reduce": {"$reduce": {"input": "$xs", "initialValue": {"s": 0}, "in": {"s": {"$add": ["$$value.s", "$$this"]}}}},
    }}], [doc])
    assert out == [{"_id": 1, "root": 2, "cur": {"b": 2}, "let": 11, "nested": [[1, 2, 3], [2, 4, 6], [3, 6, 9]],
                    "this": [3], "reduce": {"s": 6}}]
    assert run([{"$replaceRoot": {"newRoot": "$$ROOT.a"}}], [doc]) == [{"b": 2}]
    assert run([{"$match": {"$expr": {"$eq": ["$$CURRENT.a.b", 2]}}}], [doc]) == [doc]


def test_regex_values_python_and_bson():
    docs = [{"_id": 1, "s": "ZTF21abc"}, {"_id": 2, "s": "ztf19x"}, {"_id": 3, "s": 5}]
    ids = lambda q: [d["_id"] for d in run([{"$match": q}], docs)]  # noqa: E731
    assert ids({"s": re.compile("^ztf", re.IGNORECASE)}) == [1, 2]
    assert ids({"s": Regex("^ZTF2")}) == [1]
    assert ids({"s": {"$regex": "^ztf", "$options": "i"}}) == [1, 2]
    assert ids({"s": {"$in": [re.compile("19"), 5]}}) == [2, 3]
    assert ids({"s": {"$not": re.compile("^Z")}}) == [2, 3]
    assert ids({"s": {"$regex": "(?<yr>[0-9]{2})"}}) == [1, 2]  # PCRE named groups


# --- where the local database departs from the manual (engine follows the manual) ----------

def test_add_fields_nested_object_merges_into_embedded_documents():
    docs = [{"_id": 1, "a": {"x": 1}}, {"_id": 2, "a": 5}, {"_id": 3, "a": [{"x": 1}, 7]}, {"_id": 4}]
    assert run([{"$set": {"a": {"b": 2}}}], docs) == [
        {"_id": 1, "a": {"x": 1, "b": 2}}, {"_id": 2, "a": {"b": 2}}, {"_id": 3, "a": [{"x": 1, "b": 2}, {"b": 2}]},
        {"_id": 4, "a": {"b": 2}}]
    assert run([{"$addFields": {"a.b": 2}}], docs) == run([{"$set": {"a": {"b": 2}}}], docs)
    assert run([{"$addFields": {"a": {"$literal": {"b": 2}}}}], docs)[0] == {"_id": 1, "a": {"b": 2}}


def test_documented_behaviours_the_database_gets_wrong():
    assert run([{"$project": {"f": {"$first": "$x"}}}], [{"_id": 1, "x": []}]) == [{"_id": 1}]
    assert run([{"$match": {"a": 1}}, {"$count": "n"}], [{"a": 2}]) == []
    assert ev({"$zip": {"inputs": ["$nope", [1]]}}) is None
    assert [d["_id"] for d in run([{"$match": {"s": {"$all": [None]}}}], [{"_id": 1}, {"_id": 2, "s": 1}])] == [1]
    assert ev({"$arrayElemAt": [[1], 5]}) is MISSING
    assert ev({"$type": {"$arrayElemAt": [[1], 5]}}) == "missing"
    assert ev({"$indexOfArray": [[False, 0], 0]}) == 1
    assert ev({"$subtract": ["$d", 0.5]}, {"d": datetime.datetime(2020, 1, 1)}) == datetime.datetime(2020, 1, 1)
    assert ev({"$toString": "$d"}, {"d": datetime.datetime(2018, 3, 27, 16, 58, 51, 538000)}) == "2018-03-27T16:58:51.538Z"
    assert run([{"$project": {"f": 2, "_id": 0}}], [{"f": "x", "g": 1}]) == [{"f": "x"}]
    assert ev({"$map": {"input": [{"a": 1}, {}], "as": "p", "in": {"$type": "$$p.a"}}}) == ["int", "missing"]


def test_outputs_belong_to_the_caller():
    f = compile_pipeline([{"$addFields": {"tags": ["a", "b"], "meta": {"$literal": {"k": [1]}}}},
                          {"$project": {"candidate": 1, "tags": 1, "meta": 1}}])
    alert = {"_id": 1, "candidate": {"jd": 1.0, "arr": [1, 2]}}
    out = f.passes(alert)
    out["candidate"]["jd"] = 2.0
    out["candidate"]["arr"].append(3)
    out["tags"].append("c")
    out["meta"]["k"].append(2)
    assert alert == {"_id": 1, "candidate": {"jd": 1.0, "arr": [1, 2]}}
    assert f.passes(alert) == {"_id": 1, "candidate": {"jd": 1.0, "arr": [1, 2]}, "tags": ["a", "b"], "meta": {"k": [1]}}
    assert f.run([alert])[0]["tags"] is not f.run([alert])[0]["tags"]
    shared = f.passes(alert, copy=False)
    assert shared["candidate"] is alert["candidate"]


def test_compiled_pipelines_pickle_for_dask_workers():
    import pickle

    f = compile_pipeline([{"$match": {"a": {"$gt": 1}}}, {"$addFields": {"b": {"$map": {"input": "$xs", "in": {"$add": ["$$this", 1]}}}}}])
    g = pickle.loads(pickle.dumps(f))
    assert g.passes({"a": 2, "xs": [1, 2]}) == f.passes({"a": 2, "xs": [1, 2]}) == {"a": 2, "xs": [1, 2], "b": [2, 3]}
