"""The MongoDB query language ($match) compiled to predicates ``m(doc) -> bool``.

Semantics (MongoDB manual, "Query and Projection Operators"):
  * a path matches when ANY of its candidate values satisfies the operator (arrays on the way
    are traversed, a leaf array contributes its elements and itself); ``$ne``, ``$nin``,
    ``$not``, ``$nor`` and ``$exists: false`` negate the whole path match;
  * ``{f: null}`` matches null and missing;
  * comparisons only match values of the same canonical type ("type bracketing"); NaN only
    equals NaN;
  * several operators on one path are independent ({a: {$gt: 1, $lt: 5}} matches [0, 10]);
    ``$elemMatch`` requires one element to satisfy all of them.
"""

from __future__ import annotations

import math

from bson import Decimal128, Int64

from . import regex as rx
from .bson_order import (
    MISSING, R_NUMBER, compare, rank, to_pynum, truthy, type_name,
)
from .errors import FilterCompileError, UnsupportedOperator
from .codegen import compile_fast
from .expressions import FORBIDDEN_OPERATORS, Ctx
from .paths import _SLOW, query_getter, split_path

__all__ = ["compile_query"]

_TYPE_ALIASES = {
    "double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6, "objectId": 7, "bool": 8,
    "date": 9, "null": 10, "regex": 11, "dbPointer": 12, "javascript": 13, "symbol": 14,
    "javascriptWithScope": 15, "int": 16, "timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}
_CODE_NAMES = {v: k for k, v in _TYPE_ALIASES.items()}

_UNSUPPORTED_QUERY_OPS = frozenset({
    "$text", "$jsonSchema", "$geoWithin", "$geoIntersects", "$near", "$nearSphere", "$within", "$box",
    "$center", "$centerSphere", "$polygon", "$bitsAllSet", "$bitsAnySet", "$bitsAllClear", "$bitsAnyClear",
    "$sampleRate", "$alwaysTrue", "$alwaysFalse", "$isolated", "$atomic", "$natural", "$rand",
})


def _cerr(msg, op=None):
    return FilterCompileError(msg, operator=op)


# --- element predicates -----------------------------------------------------------------------

class _Leaf:
    """A positive operator: ``pred(value)``; ``expand``: whether leaf arrays are traversed."""

    __slots__ = ("pred", "expand")

    def __init__(self, pred, expand=True):
        self.pred = pred
        self.expand = expand

    def elem(self, v) -> bool:
        return self.pred(v)

    def path_matcher(self, parts):
        return _path_matcher(parts, self.pred, self.expand)


class _Not:
    __slots__ = ("inner",)

    def __init__(self, inner):
        self.inner = inner

    def elem(self, v) -> bool:
        return not self.inner.elem(v)

    def path_matcher(self, parts):
        m = self.inner.path_matcher(parts)
        return lambda doc: not m(doc)


class _All:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def elem(self, v) -> bool:
        for it in self.items:
            if not it.elem(v):
                return False
        return True

    def path_matcher(self, parts):
        return _and([it.path_matcher(parts) for it in self.items])


def _path_matcher(parts, pred, expand=True):
    fast, slow = query_getter(parts, expand)

    def m(doc):
        v = fast(doc)
        if v is not _SLOW:
            return pred(v)
        for x in slow(doc):
            if pred(x):
                return True
        return False
    return m


def _and(ms):
    if not ms:
        return lambda doc: True
    if len(ms) == 1:
        return ms[0]
    if len(ms) == 2:
        a, b = ms
        return lambda doc: a(doc) and b(doc)
    ms = tuple(ms)

    def all_(doc):
        for m in ms:
            if not m(doc):
                return False
        return True
    return all_


def _or(ms):
    """True when any of the matchers or predicates ``ms`` is, in order (a loop: cheaper than
    ``any()`` over a generator on the filters' hot path)."""
    ms = tuple(ms)

    def any_(x):
        for m in ms:
            if m(x):
                return True
        return False
    return any_


def _isnan(x) -> bool:
    return x != x


def _eq_pred(x):
    """Equality of one candidate value with the query value ``x``."""
    if x is None:
        return lambda v: v is None or v is MISSING
    t = type(x)
    if t is str:
        return lambda v: type(v) is str and v == x
    if t is bool:
        return lambda v: type(v) is bool and v == x
    r = rank(x)
    if r == R_NUMBER:
        px = to_pynum(x)
        if _isnan(px):
            def eq_nan(v):
                return rank(v) == R_NUMBER and _isnan(to_pynum(v))
            return eq_nan

        def eq_num(v):
            tv = type(v)
            if tv is float or tv is int:
                return v == px
            if tv is Int64 or tv is Decimal128:
                return to_pynum(v) == px
            if tv is not bool and isinstance(v, (int, float)):
                return v == px
            return False
        return eq_num

    def eq_other(v):
        return rank(v) == r and compare(v, x) == 0
    return eq_other


_SIGNS = {"$gt": lambda c: c > 0, "$gte": lambda c: c >= 0, "$lt": lambda c: c < 0, "$lte": lambda c: c <= 0}


def _cmp_pred(op, x):
    """$gt/$gte/$lt/$lte against ``x`` with type bracketing (only same canonical type matches)."""
    if x is None:
        if op in ("$gte", "$lte"):
            return lambda v: v is None or v is MISSING
        return lambda v: False
    sign = _SIGNS[op]
    r = rank(x)
    if r == R_NUMBER:
        px = to_pynum(x)
        if _isnan(px):
            if op in ("$gte", "$lte"):
                return lambda v: rank(v) == R_NUMBER and _isnan(to_pynum(v))
            return lambda v: False

        def slow(v):
            if type(v) is bool or rank(v) != R_NUMBER:
                return False
            pv = to_pynum(v)
            if _isnan(pv):
                return False
            return sign((pv > px) - (pv < px))

        if op == "$gt":
            def gt(v):
                tv = type(v)
                if tv is float or tv is int:
                    return v > px
                return slow(v)
            return gt
        if op == "$lt":
            def lt(v):
                tv = type(v)
                if tv is float or tv is int:
                    return v < px
                return slow(v)
            return lt
        if op == "$gte":
            def gte(v):
                tv = type(v)
                if tv is float or tv is int:
                    return v >= px
                return slow(v)
            return gte

        def lte(v):
            tv = type(v)
            if tv is float or tv is int:
                return v <= px
            return slow(v)
        return lte
    if r in (-1, 127):  # MinKey / MaxKey compare to every type
        return lambda v: v is not MISSING and sign(compare(v, x))

    def cmp_other(v):
        return rank(v) == r and sign(compare(v, x))
    return cmp_other


def _regex_pred(pattern):
    def regex(v):
        if type(v) is str:
            return pattern.search(v) is not None
        if rx.is_regex(v):
            return v.pattern == pattern.pattern
        return False
    return regex


def _type_pred(spec, op="$type"):
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise _cerr("$type must match at least one type", op)
    names = set()
    number = False
    for t in items:
        if isinstance(t, str):
            if t == "number":
                number = True
            elif t in _TYPE_ALIASES:
                names.add(t)
            else:
                raise _cerr(f"Unknown type name alias: {t}", op)
        elif isinstance(t, (int, float)) and not isinstance(t, bool):
            if float(t) != int(t) or int(t) not in _CODE_NAMES:
                raise _cerr(f"Invalid numerical type code: {t}", op)
            names.add(_CODE_NAMES[int(t)])
        else:
            raise _cerr("type must be represented as a number or a string", op)

    def type_pred(v):
        if v is MISSING:
            return False
        if number and rank(v) == R_NUMBER:
            return True
        return type_name(v) in names
    return type_pred


def _mod_pred(spec, op="$mod"):
    if not isinstance(spec, list):
        raise _cerr("malformed mod, needs to be an array", op)
    if len(spec) < 2:
        raise _cerr("malformed mod, not enough elements", op)
    if len(spec) > 2:
        raise _cerr("malformed mod, too many elements", op)
    d, r = spec
    for x, what in ((d, "divisor"), (r, "remainder")):
        if rank(x) != R_NUMBER:
            raise _cerr(f"malformed mod, {what} not a number", op)
        px = to_pynum(x)
        if _isnan(px) or (isinstance(px, float) and math.isinf(px)):
            raise _cerr(f"malformed mod, {what} value is invalid :: caused by :: {px}", op)
    d = int(to_pynum(d))
    r = int(to_pynum(r))
    if d == 0:
        raise _cerr("divisor cannot be 0", op)

    def mod(v):
        if rank(v) != R_NUMBER:
            return False
        pv = to_pynum(v)
        if _isnan(pv) or (isinstance(pv, float) and math.isinf(pv)):
            return False
        iv = int(pv)
        m = abs(iv) % abs(d)
        if iv < 0:
            m = -m
        return m == r
    return mod


def _size_pred(n, op="$size"):
    if rank(n) != R_NUMBER or isinstance(n, bool):
        raise _cerr(f"$size needs a number, not {type_name(n)}", op)
    pn = to_pynum(n)
    if _isnan(pn) or float(pn) != int(pn):
        raise _cerr(f"Failed to parse $size. Expected an integer, but found {n}", op)
    k = int(pn)
    if k < 0:
        raise _cerr(f"Failed to parse $size. Expected a non-negative number in: $size: {k}", op)
    return lambda v: type(v) is list and len(v) == k


def _is_operator_doc(spec, inside_elem_match=False) -> bool:
    if not isinstance(spec, dict) or not spec:
        return False
    first = next(iter(spec))
    if not isinstance(first, str) or not first.startswith("$"):
        return False
    if inside_elem_match and first in ("$and", "$or", "$nor", "$where", "$expr", "$text", "$comment"):
        return False
    return True


def _value_pred(v):
    """Implicit equality: a regex value matches strings, anything else is $eq."""
    if rx.is_regex(v):
        return _regex_pred(rx.to_pattern(v))
    return _eq_pred(v)


def _compile_ops(spec: dict, ctx) -> _All:
    """An operator document ({$gt: 1, $lt: 5, ...}) → the conjunction of its operators."""
    items = []
    keys = list(spec)
    regex_val = spec.get("$regex", MISSING)
    options = spec.get("$options", MISSING)
    if options is not MISSING and regex_val is MISSING:
        raise _cerr("$options needs a $regex", "$options")
    for op in keys:
        arg = spec[op]
        if not isinstance(op, str) or not op.startswith("$"):
            raise _cerr(f"unknown operator: {op}", op)
        if op == "$options":
            continue
        if op == "$regex":
            if options is not MISSING and not isinstance(options, str):
                raise _cerr("$options has to be a string", op)
            if not (isinstance(arg, str) or rx.is_regex(arg)):
                raise _cerr("$regex has to be a string", op)
            pat = rx.to_pattern(arg, None if options is MISSING else options)
            items.append(_Leaf(_regex_pred(pat)))
        elif op == "$eq":
            items.append(_Leaf(_eq_pred(arg)))
        elif op == "$ne":
            if rx.is_regex(arg):
                raise _cerr("Can't have regex as arg to $ne.", op)
            items.append(_Not(_Leaf(_eq_pred(arg))))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if rx.is_regex(arg):
                raise _cerr(f"Can't have RegEx as arg to predicate over field: {op}", op)
            items.append(_Leaf(_cmp_pred(op, arg)))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise _cerr(f"{op} needs an array", op)
            preds = []
            for x in arg:
                if _is_operator_doc(x):
                    raise _cerr(f"cannot nest $ under {op}", op)
                preds.append(_value_pred(x))
            if len(preds) == 1:
                p = preds[0]
            else:
                simple_vals = [x for x in arg if type(x) in (str, int, float) and x == x]
                if len(simple_vals) == len(arg) and len(arg) > 3:
                    strs = frozenset(x for x in arg if type(x) is str)
                    nums = frozenset(x for x in arg if type(x) in (int, float))

                    def p(v, strs=strs, nums=nums, others=_or(preds)):
                        tv = type(v)
                        if tv is str:
                            return v in strs
                        if tv is float or tv is int:
                            return v in nums
                        return others(v)
                else:
                    p = _or(preds)
            leaf = _Leaf(p)
            items.append(leaf if op == "$in" else _Not(leaf))
        elif op == "$exists":
            leaf = _Leaf(lambda v: v is not MISSING)
            items.append(leaf if truthy(arg) else _Not(leaf))
        elif op == "$type":
            items.append(_Leaf(_type_pred(arg)))
        elif op == "$size":
            items.append(_Leaf(_size_pred(arg), expand=False))
        elif op == "$mod":
            items.append(_Leaf(_mod_pred(arg)))
        elif op == "$all":
            if not isinstance(arg, list):
                raise _cerr("$all needs an array", op)
            if not arg:
                items.append(_Leaf(lambda v: False))
                continue
            for x in arg:
                if isinstance(x, dict) and x and next(iter(x)) == "$elemMatch":
                    if len(x) != 1:
                        raise _cerr("$all/$elemMatch has to be consistent", op)
                    items.append(_elem_match(x["$elemMatch"], ctx))
                elif _is_operator_doc(x):
                    raise _cerr("no $ expressions in $all", op)
                else:
                    items.append(_Leaf(_value_pred(x)))
        elif op == "$elemMatch":
            items.append(_elem_match(arg, ctx))
        elif op == "$not":
            if rx.is_regex(arg):
                items.append(_Not(_Leaf(_regex_pred(rx.to_pattern(arg)))))
            elif isinstance(arg, dict):
                if not arg:
                    raise _cerr("$not cannot be empty", op)
                if not _is_operator_doc(arg):
                    raise _cerr("$not needs a regex or a document", op)
                items.append(_Not(_compile_ops(arg, ctx)))
            else:
                raise _cerr("$not needs a regex or a document", op)
        elif op in FORBIDDEN_OPERATORS:
            raise UnsupportedOperator(f"forbidden operator {op}", operator=op, forbidden=True)
        else:
            raise UnsupportedOperator(f"unsupported operator {op}", operator=op)
    return _All(items)


def _elem_match(arg, ctx) -> _Leaf:
    if not isinstance(arg, dict):
        raise _cerr("$elemMatch needs an Object", "$elemMatch")
    if _is_operator_doc(arg, inside_elem_match=True):
        sub = _compile_ops(arg, ctx)
        sub_elem = sub.elem

        def elem_match_value(v):
            if type(v) is not list:
                return False
            for e in v:
                if sub_elem(e):
                    return True
            return False
        return _Leaf(elem_match_value, expand=False)
    sub_q = compile_query(arg, ctx, top_level=False)

    def elem_match_object(v):
        if type(v) is not list:
            return False
        for e in v:
            if isinstance(e, dict):
                if sub_q(e):
                    return True
            elif type(e) is list:
                if sub_q({str(i): x for i, x in enumerate(e)}):
                    return True
        return False
    return _Leaf(elem_match_object, expand=False)


def _check_path(path: str):
    if not isinstance(path, str):
        raise _cerr("field names must be strings")
    if path == "" or any(p == "" for p in path.split(".")):
        raise _cerr(f"invalid field path {path!r}: empty field name")
    return split_path(path)


def _compile_field(path: str, spec, ctx):
    parts = _check_path(path)
    if rx.is_regex(spec):
        return _Leaf(_regex_pred(rx.to_pattern(spec))).path_matcher(parts)
    if _is_operator_doc(spec):
        return _compile_ops(spec, ctx).path_matcher(parts)
    return _Leaf(_eq_pred(spec)).path_matcher(parts)


def compile_query(q, ctx: Ctx | None = None, top_level: bool = True):
    """Compile a query document into ``m(doc) -> bool``."""
    if ctx is None:
        ctx = Ctx()
    if not isinstance(q, dict):
        raise _cerr(f"the match filter must be an expression in an object, not {type_name(q)}")
    ms = []
    for k, v in q.items():
        if isinstance(k, str) and k.startswith("$"):
            if k in ("$and", "$or", "$nor"):
                if not isinstance(v, list) or not v:
                    raise _cerr(f"{k} argument must be a non-empty array", k)
                subs = []
                for x in v:
                    if not isinstance(x, dict):
                        raise _cerr(f"{k} argument's entries must be objects", k)
                    subs.append(compile_query(x, ctx, top_level))
                if k == "$and":
                    ms.append(_and(subs))
                elif k == "$or":
                    ms.append(_or(subs))
                else:
                    any_ = _or(subs)
                    ms.append(lambda doc, any_=any_: not any_(doc))
            elif k == "$expr":
                if not top_level:
                    raise _cerr("$expr can only be applied to the top-level document", k)
                f = compile_fast(v, ctx)
                ms.append(lambda doc, f=f: truthy(f(doc, {"ROOT": doc})))
            elif k == "$comment":
                continue
            elif k in FORBIDDEN_OPERATORS:
                raise UnsupportedOperator(f"forbidden operator {k}", operator=k, forbidden=True)
            else:
                raise UnsupportedOperator(f"unsupported operator {k}", operator=k)
        else:
            ms.append(_compile_field(k, v, ctx))
    return _and(ms)
