"""Aggregation expressions compiled to closures ``f(doc, vars) -> value``, one module per operator family.

``doc`` is ``$$CURRENT``; ``vars`` is a dict of variables in scope (``ROOT`` plus user variables
and ``this`` / ``value`` inside ``$map`` / ``$filter`` / ``$reduce``).  A field that does not
exist evaluates to ``MISSING`` (distinct from ``None`` = null); ``$$REMOVE`` is ``MISSING``.
Outputs may share sub-objects with the input and with literal constants: never mutate them.

``base`` holds the context and the recursive compiler; ``numbers`` the numeric kernels; the
families (``arithmetic``, ``comparison``, ``logic``, ``arrays``, ``objects``, ``strings``,
``types``, ``accumulators``) compile their operators. A new operator goes in its family's module
and in the table below.
"""

from __future__ import annotations

import math

from .accumulators import ARRAY_ACCUMULATORS, acc_avg, acc_max, acc_min, acc_std_pop, acc_std_samp, acc_sum
from .arithmetic import _c_abs, _c_add, _c_atan2, _c_ceil, _c_divide, _c_floor, _c_multiply, _c_round, _c_subtract, _trig
from .arrays import (_c_any_all, _c_array_acc, _c_array_elem_at, _c_concat_arrays, _c_filter, _c_first_last, _c_in,
                     _c_index_of_array, _c_is_array, _c_map, _c_range, _c_reduce, _c_reverse_array, _c_size, _c_slice,
                     _c_sort_array, _c_zip)
from .base import (EXPRESSION_OPERATORS, FORBIDDEN_OPERATORS, Ctx, _binary, _is_const, _unary, compile_expression,
                   evaluate)
from .comparison import _c_cmp, _plain_number
from .logic import _c_and, _c_cond, _c_ifnull, _c_let, _c_literal, _c_not, _c_or, _c_switch
from .numbers import _abs, _add_values, _divide, _exp, _ln, _log, _log10, _mod, _mul_values, _pow, _sqrt, _subtract
from .objects import _c_array_to_object, _c_merge_objects, _c_object_to_array, _c_set
from .strings import (_c_case, _c_concat, _c_index_of_cp, _c_regex_match, _c_split, _c_strcasecmp, _c_strlen_bytes,
                      _c_strlen_cp, _c_substr_bytes, _c_substr_cp, _c_trim)
from .types import _c_convert, _c_is_number, _c_to, _c_type

__all__ = ["compile_expression", "Ctx", "EXPRESSION_OPERATORS", "FORBIDDEN_OPERATORS", "evaluate",
           # what the rest of the engine uses: $group's accumulators (stages), and the numeric kernels and
           # constant test the code generator inlines (codegen)
           "ARRAY_ACCUMULATORS", "acc_avg", "acc_max", "acc_min", "acc_std_pop", "acc_std_samp", "acc_sum",
           "_abs", "_add_values", "_divide", "_is_const", "_mul_values", "_plain_number", "_subtract"]

EXPRESSION_OPERATORS.update({
    # arithmetic
    "$add": _c_add, "$subtract": _c_subtract, "$multiply": _c_multiply, "$divide": _c_divide,
    "$mod": _binary(_mod), "$abs": _c_abs, "$ceil": _c_ceil, "$floor": _c_floor,
    "$round": _c_round(False), "$trunc": _c_round(True),
    "$sqrt": _unary(_sqrt), "$pow": _binary(_pow), "$exp": _unary(_exp), "$ln": _unary(_ln),
    "$log": _binary(_log), "$log10": _unary(_log10),
    # trigonometry (extras: common in astronomers' separation filters)
    "$sin": _trig(math.sin, "(-inf, inf)", lambda x: not math.isinf(x)),
    "$cos": _trig(math.cos, "(-inf, inf)", lambda x: not math.isinf(x)),
    "$tan": _trig(math.tan, "(-inf, inf)", lambda x: not math.isinf(x)),
    "$asin": _trig(math.asin, "[-1, 1]", lambda x: -1 <= x <= 1),
    "$acos": _trig(math.acos, "[-1, 1]", lambda x: -1 <= x <= 1),
    "$atan": _trig(math.atan, "(-inf, inf)"), "$atan2": _c_atan2,
    "$degreesToRadians": _trig(math.radians, "(-inf, inf)"),
    "$radiansToDegrees": _trig(math.degrees, "(-inf, inf)"),
    # comparison
    "$eq": _c_cmp("eq"), "$ne": _c_cmp("ne"), "$gt": _c_cmp("gt"), "$gte": _c_cmp("gte"),
    "$lt": _c_cmp("lt"), "$lte": _c_cmp("lte"), "$cmp": _c_cmp("cmp"),
    # boolean
    "$and": _c_and, "$or": _c_or, "$not": _c_not,
    # conditional
    "$cond": _c_cond, "$ifNull": _c_ifnull, "$switch": _c_switch,
    # variables / literals
    "$let": _c_let, "$literal": _c_literal,
    # arrays
    "$filter": _c_filter, "$map": _c_map, "$reduce": _c_reduce, "$arrayElemAt": _c_array_elem_at,
    "$first": _c_first_last(True), "$last": _c_first_last(False), "$size": _c_size, "$slice": _c_slice,
    "$in": _c_in, "$concatArrays": _c_concat_arrays, "$indexOfArray": _c_index_of_array,
    "$isArray": _c_is_array, "$anyElementTrue": _c_any_all(True), "$allElementsTrue": _c_any_all(False),
    "$reverseArray": _c_reverse_array, "$range": _c_range, "$sortArray": _c_sort_array, "$zip": _c_zip,
    # accumulators over arrays
    "$sum": _c_array_acc("$sum"), "$avg": _c_array_acc("$avg"), "$min": _c_array_acc("$min"),
    "$max": _c_array_acc("$max"), "$stdDevPop": _c_array_acc("$stdDevPop"),
    "$stdDevSamp": _c_array_acc("$stdDevSamp"),
    # objects and sets
    "$mergeObjects": _c_merge_objects, "$objectToArray": _c_object_to_array,
    "$arrayToObject": _c_array_to_object,
    "$setUnion": _c_set("union"), "$setIntersection": _c_set("intersection"),
    "$setDifference": _c_set("difference"), "$setEquals": _c_set("equals"), "$setIsSubset": _c_set("subset"),
    # strings
    "$concat": _c_concat, "$substrCP": _c_substr_cp, "$substrBytes": _c_substr_bytes,
    "$substr": _c_substr_bytes, "$toLower": _c_case(False), "$toUpper": _c_case(True),
    "$strLenCP": _c_strlen_cp, "$strLenBytes": _c_strlen_bytes, "$split": _c_split,
    "$strcasecmp": _c_strcasecmp, "$indexOfCP": _c_index_of_cp,
    "$trim": _c_trim("both"), "$ltrim": _c_trim("left"), "$rtrim": _c_trim("right"),
    "$regexMatch": _c_regex_match,
    # types
    "$type": _c_type, "$isNumber": _c_is_number, "$convert": _c_convert,
    "$toDouble": _c_to("double"), "$toInt": _c_to("int"), "$toLong": _c_to("long"),
    "$toString": _c_to("string"), "$toBool": _c_to("bool"), "$toDecimal": _c_to("decimal"),
    "$toObjectId": _c_to("objectId"), "$toDate": _c_to("date"),
})
