"""Arithmetic and trigonometric operators ($add ... $log10, $sin ... $radiansToDegrees)."""

from __future__ import annotations

import math

from ..bson_order import MISSING, fmt
from .base import _Decimal, _args, _const, _err, _fold
from .numbers import _abs, _add_values, _ceil_floor, _dec, _divide, _kind, _mul_values, _nullish, _num_arg, _round_trunc, _subtract, _to_float


# --- arithmetic -------------------------------------------------------------------------------

def _lazy_values(fns, doc, vars):
    """Evaluate arguments in order, stopping at the first null / missing one (as MongoDB's
    $add / $multiply do: later arguments are then not evaluated)."""
    vals = []
    for f in fns:
        v = f(doc, vars)
        if v is None or v is MISSING:
            vals.append(v)
            break
        vals.append(v)
    return vals


def _c_add(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)
    if len(fns) == 2:
        a, b = fns

        def add2(doc, vars):
            x = a(doc, vars)
            if x is None or x is MISSING:
                return None
            y = b(doc, vars)
            if type(x) is float and type(y) is float:
                return x + y
            return _add_values((x, y))
        return _fold(add2, fns)

    def add(doc, vars):
        return _add_values(_lazy_values(fns, doc, vars))
    return _fold(add, fns)


def _c_multiply(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def mul(doc, vars):
        vals = _lazy_values(fns, doc, vars)
        if len(vals) == 2 and type(vals[0]) is float and type(vals[1]) is float:
            return vals[0] * vals[1]
        return _mul_values(vals)
    return _fold(mul, fns)


def _c_subtract(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)

    def sub(doc, vars):
        x = a(doc, vars)
        y = b(doc, vars)
        if type(x) is float and type(y) is float:
            return x - y
        return _subtract(x, y)
    return _fold(sub, [a, b])


def _c_divide(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)

    def div(doc, vars):
        x = a(doc, vars)
        y = b(doc, vars)
        if type(x) is float and type(y) is float and y != 0.0:
            return x / y
        return _divide(x, y)
    return _fold(div, [a, b])


def _c_round(truncate):
    def comp(spec, ctx, op):
        fns = _args(op, spec, ctx, 1, 2)
        a = fns[0]
        p = fns[1] if len(fns) > 1 else _const(0)

        def f(doc, vars):
            x = a(doc, vars)
            if x is None or x is MISSING:
                return None
            return _round_trunc(op, x, p(doc, vars), truncate)
        return _fold(f, fns)
    return comp


def _c_ceil(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: _ceil_floor(op, a(d, v), True), [a])


def _c_floor(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: _ceil_floor(op, a(d, v), False), [a])


def _c_abs(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        x = a(doc, vars)
        if type(x) is float:
            return abs(x)
        return _abs(x)
    return _fold(f, [a])


def _trig(fn, name, domain=None):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            x = a(doc, vars)
            if _num_arg(op, x) is None:
                return None
            dec = _kind(x) == 3
            xf = _to_float(x)
            if domain is not None and xf == xf and not domain(xf):
                raise _err(f"cannot apply {op} to {fmt(x)}, value must be in {name}", 50989)
            try:
                r = fn(xf)
            except (ValueError, OverflowError):
                r = math.nan
            return _dec(_Decimal(repr(r))) if dec else r
        return _fold(f, [a])
    return comp


def _c_atan2(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)

    def f(doc, vars):
        y, x = a(doc, vars), b(doc, vars)
        if _nullish(y) or _nullish(x):
            return None
        _num_arg(op, y)
        _num_arg(op, x)
        return math.atan2(_to_float(y), _to_float(x))
    return _fold(f, [a, b])
