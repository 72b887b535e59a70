"""Comparison operators ($eq, $ne, $gt, $gte, $lt, $lte, $cmp) in BSON order."""

from __future__ import annotations

import operator

from ..bson_order import MISSING, compare
from .base import _args, _fold, _is_const


# --- comparison -------------------------------------------------------------------------------

_OPS = {
    "gt": (operator.gt, lambda c: c > 0), "gte": (operator.ge, lambda c: c >= 0),
    "lt": (operator.lt, lambda c: c < 0), "lte": (operator.le, lambda c: c <= 0),
    "eq": (operator.eq, lambda c: c == 0), "ne": (operator.ne, lambda c: c != 0),
}
_FLIP = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte", "eq": "eq", "ne": "ne"}


def _plain_number(v) -> bool:
    t = type(v)
    return (t is float or t is int) and v == v


def _cmp_const(which, a, c):
    """``a <op> c`` with ``c`` a constant: a fast path for the common numeric / string / null cases."""
    py_op, sign = _OPS[which]
    if _plain_number(c):
        def cmp_num(doc, vars):
            x = a(doc, vars)
            tx = type(x)
            if (tx is float or tx is int) and x == x:
                return py_op(x, c)
            return sign(compare(x, c))
        return cmp_num
    if type(c) is str:
        def cmp_str(doc, vars):
            x = a(doc, vars)
            if type(x) is str:
                return py_op(x, c)
            return sign(compare(x, c))
        return cmp_str
    if c is None:
        # numbers, strings, documents and arrays all sort after null
        res = sign(1)
        res_missing = sign(-1)
        res_null = sign(0)

        def cmp_null(doc, vars):
            x = a(doc, vars)
            if x is MISSING:
                return res_missing
            if x is None:
                return res_null
            tx = type(x)
            if tx is float or tx is int or tx is str or tx is dict or tx is list:
                return res
            return sign(compare(x, None))
        return cmp_null

    def cmp_other(doc, vars):
        return sign(compare(a(doc, vars), c))
    return cmp_other


def _c_cmp(which):
    def comp(spec, ctx, op):
        a, b = _args(op, spec, ctx, 2)
        if which == "cmp":
            return _fold(lambda d, v: compare(a(d, v), b(d, v)), [a, b])
        if _is_const(b) and not _is_const(a):
            return _cmp_const(which, a, b.value)
        if _is_const(a) and not _is_const(b):
            return _cmp_const(_FLIP[which], b, a.value)
        py_op, sign = _OPS[which]

        def cmp2(doc, vars):
            x = a(doc, vars)
            y = b(doc, vars)
            tx = type(x)
            ty = type(y)
            if (tx is float or tx is int) and (ty is float or ty is int) and x == x and y == y:
                return py_op(x, y)
            if tx is str and ty is str:
                return py_op(x, y)
            return sign(compare(x, y))
        return _fold(cmp2, [a, b])
    return comp
