"""String operators ($concat, $substrCP, $split, $trim, $regexMatch, ...) with MongoDB's code-point
and byte semantics."""

from __future__ import annotations

import datetime
import math
import re

from .. import regex as rx
from ..bson_order import MISSING, fmt, type_name
from ..errors import FilterCompileError, FilterRuntimeError
from .base import _args, _cerr, _const, _err, _fold, _is_const, compile_expression
from .numbers import _as_int, _is_integral, _kind, _nullish, _to_dec, _to_float


# --- strings ----------------------------------------------------------------------------------

def _fmt_double(f: float) -> str:
    if f != f:
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    r = repr(f)
    if "e" in r:
        m, e = r.split("e")
        e_i = int(e)
        return f"{m}e{'+' if e_i >= 0 else '-'}{abs(e_i):02d}" if abs(e_i) < 100 else f"{m}e{e}"
    return r


def _coerce_str(op, v):
    if _nullish(v):
        return ""
    t = type(v)
    if t is str:
        return v
    k = _kind(v)
    if k == 2:
        return _fmt_double(v)
    if k in (0, 1):
        return str(int(v))
    if k == 3:
        return str(_to_dec(v))
    if isinstance(v, datetime.datetime):
        return _date_iso(v)
    raise _err(f"can't convert from BSON type {type_name(v)} to String", 16007)


def _date_iso(d: datetime.datetime) -> str:
    if d.tzinfo is not None:
        d = d.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _c_concat(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def f(doc, vars):
        parts = []
        for fn in fns:
            v = fn(doc, vars)
            if type(v) is str:
                parts.append(v)
                continue
            if _nullish(v):
                return None
            raise _err(f"$concat only supports strings, not {type_name(v)}", 16702)
        return "".join(parts)
    return _fold(f, fns)


_ASCII_LOWER = {i: i + 32 for i in range(65, 91)}
_ASCII_UPPER = {i: i - 32 for i in range(97, 123)}


def _c_case(upper):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            s = _coerce_str(op, a(doc, vars))
            return s.translate(_ASCII_UPPER if upper else _ASCII_LOWER)
        return _fold(f, [a])
    return comp


def _c_strlen_cp(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        v = a(doc, vars)
        if type(v) is not str:
            raise _err(f"$strLenCP requires a string argument, found: {type_name(v)}", 34471)
        return len(v)
    return _fold(f, [a])


def _c_strlen_bytes(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        v = a(doc, vars)
        if type(v) is not str:
            raise _err(f"$strLenBytes requires a string argument, found: {type_name(v)}", 34473)
        return len(v.encode("utf-8"))
    return _fold(f, [a])


def _c_substr_cp(spec, ctx, op):
    s, st, ln = _args(op, spec, ctx, 3)

    def f(doc, vars):
        string = _coerce_str(op, s(doc, vars))
        start = st(doc, vars)
        length = ln(doc, vars)
        if _kind(start) == -1:
            raise _err(f"{op}: starting index must be a numeric type (is BSON type {type_name(start)})", 34450)
        if _kind(length) == -1:
            raise _err(f"{op}: length must be a numeric type (is BSON type {type_name(length)})", 34452)
        if not _is_integral(start):
            raise _err(f"{op}: starting index cannot be represented as a 32-bit integral value", 34451)
        if not _is_integral(length):
            raise _err(f"{op}: length cannot be represented as a 32-bit integral value", 34453)
        i, n = _as_int(start), _as_int(length)
        if i < 0:
            raise _err(f"{op}: starting index must be non-negative (got: {i})", 34455)
        if n < 0:
            return string[i:]
        return string[i:i + n]
    return _fold(f, [s, st, ln])


def _c_substr_bytes(spec, ctx, op):
    s, st, ln = _args(op, spec, ctx, 3)

    def f(doc, vars):
        b = _coerce_str(op, s(doc, vars)).encode("utf-8")
        start, length = st(doc, vars), ln(doc, vars)
        if _kind(start) == -1 or _kind(length) == -1:
            raise _err(f"{op}: starting index and length must be numeric", 16034)
        i, n = int(_to_float(start)), int(_to_float(length))
        if i < 0:
            i = 0
        seg = b[i:] if n < 0 else b[i:i + n]
        try:
            return seg.decode("utf-8")
        except UnicodeDecodeError:
            raise _err(f"{op}: Invalid range, starting index is a UTF-8 continuation byte.", 28656) from None
    return _fold(f, [s, st, ln])


def _c_split(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)

    def f(doc, vars):
        s, d = a(doc, vars), b(doc, vars)
        if _nullish(s) or _nullish(d):
            return None
        if type(s) is not str:
            raise _err(f"$split requires an expression that evaluates to a string as a first argument, found: "
                       f"{type_name(s)}", 40085)
        if type(d) is not str:
            raise _err(f"$split requires an expression that evaluates to a string as a second argument, found: "
                       f"{type_name(d)}", 40086)
        if d == "":
            raise _err("$split requires a non-empty separator", 40087)
        return s.split(d)
    return _fold(f, [a, b])


def _c_strcasecmp(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)

    def f(doc, vars):
        x = _coerce_str(op, a(doc, vars)).translate(_ASCII_UPPER)
        y = _coerce_str(op, b(doc, vars)).translate(_ASCII_UPPER)
        return (x > y) - (x < y)
    return _fold(f, [a, b])


def _c_index_of_cp(spec, ctx, op):
    fns = _args(op, spec, ctx, 2, 4)

    def f(doc, vars):
        vals = [fn(doc, vars) for fn in fns]
        s, sub = vals[0], vals[1]
        if _nullish(s):
            return None
        if type(s) is not str:
            raise _err(f"$indexOfCP requires a string as the first argument, found: {type_name(s)}", 40093)
        if type(sub) is not str:
            raise _err(f"$indexOfCP requires a string as the second argument, found: {type_name(sub)}", 40094)
        start = _as_int(vals[2]) if len(vals) > 2 else 0
        end = _as_int(vals[3]) if len(vals) > 3 else len(s)
        if start < 0 or end < 0:
            raise _err("$indexOfCP requires a nonnegative start/end index", 40097)
        if start > len(s) or start > end:
            return -1
        return s.find(sub, start, end) if sub or start <= end else -1
    return _fold(f, fns)


def _c_trim(kind):
    def comp(spec, ctx, op):
        if not isinstance(spec, dict) or "input" not in spec:
            raise _cerr(f"{op} requires an 'input' field", op)
        for k in spec:
            if k not in ("input", "chars"):
                raise _cerr(f"{op} found an unknown argument: {k}", op)
        inp = compile_expression(spec["input"], ctx)
        chars = compile_expression(spec["chars"], ctx) if "chars" in spec else None

        def f(doc, vars):
            s = inp(doc, vars)
            if _nullish(s):
                return None
            if type(s) is not str:
                raise _err(f"{op} requires its input to be a string, got {fmt(s)} (of type {type_name(s)}) "
                           "instead.", 50699)
            cs = " \t\n\v\f\r\x00\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
                 "\u200a\u2028\u2029\u202f\u205f\u3000"
            if chars is not None:
                c = chars(doc, vars)
                if _nullish(c):
                    return None
                if type(c) is not str:
                    raise _err(f"{op} requires 'chars' to be a string", 50700)
                cs = c
            if kind == "both":
                return s.strip(cs)
            return s.lstrip(cs) if kind == "left" else s.rstrip(cs)
        return f
    return comp


def _c_regex_match(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr(f"{op} expects an object of named arguments but found: {type_name(spec)}", op)
    for k in spec:
        if k not in ("input", "regex", "options"):
            raise _cerr(f"{op} found an unknown argument: {k}", op)
    if "input" not in spec:
        raise _cerr(f"{op} requires 'input' parameter", op)
    if "regex" not in spec:
        raise _cerr(f"{op} requires 'regex' parameter", op)
    inp = compile_expression(spec["input"], ctx)
    reg = compile_expression(spec["regex"], ctx)
    opts = compile_expression(spec["options"], ctx) if "options" in spec else _const(MISSING)

    def pattern(doc, vars):
        r = reg(doc, vars)
        o = opts(doc, vars)
        if _nullish(r):
            return None
        if not (type(r) is str or rx.is_regex(r)):
            raise _err(f"{op} needs 'regex' to be of type string or regex", 51105)
        if not _nullish(o) and type(o) is not str:
            raise _err(f"{op} needs 'options' to be of type string", 51106)
        if rx.is_regex(r) and not _nullish(o) and rx.options_from_flags(r.flags & ~re.UNICODE):
            raise _err(f"{op}: found regex option(s) specified in both 'regex' and 'option' fields", 51107)
        try:
            return rx.to_pattern(r, None if _nullish(o) else o)
        except FilterCompileError as exc:
            raise _err(f"{op}: {exc}", 51111) from None

    if _is_const(reg) and _is_const(opts):
        try:
            pat_const = pattern(None, {})
        except FilterRuntimeError as exc:
            raise _cerr(str(exc), op) from None
        get_pat = lambda d, v: pat_const  # noqa: E731
    else:
        get_pat = pattern

    def f(doc, vars):
        s = inp(doc, vars)
        pat = get_pat(doc, vars)
        if _nullish(s):
            return False
        if type(s) is not str:
            raise _err(f"{op} needs 'input' to be of type string", 51104)
        if pat is None:
            return False
        return pat.search(s) is not None
    return f
