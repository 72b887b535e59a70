"""Type operators ($type, $isNumber, $convert and the $to* shorthands) with MongoDB's conversion rules."""

from __future__ import annotations

import datetime
import math
import re

from bson import Int64, ObjectId
from bson.errors import InvalidId

from ..bson_order import fmt, truthy, type_name
from .base import _Decimal, _args, _cerr, _err, _fold, compile_expression
from .numbers import (_INT32_MAX, _INT32_MIN, _INT64_MAX, _INT64_MIN, _as_int, _date_to_ms, _dec, _is_integral, _kind,
                      _ms_to_date, _nullish, _to_dec, _to_float)
from .strings import _coerce_str, _date_iso


# --- types ------------------------------------------------------------------------------------

def _c_type(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: type_name(a(d, v)), [a])


def _c_is_number(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: _kind(a(d, v)) != -1, [a])


_TYPE_CODES = {1: "double", 2: "string", 3: "object", 4: "array", 5: "binData", 7: "objectId", 8: "bool",
               9: "date", 10: "null", 11: "regex", 16: "int", 17: "timestamp", 18: "long", 19: "decimal",
               -1: "minKey", 127: "maxKey"}


class _ConvError(Exception):
    pass


def _parse_number_string(s: str, target: str):
    if target in ("int", "long"):
        if not re.fullmatch(r"[+-]?[0-9]+", s):
            raise _ConvError(f"Failed to parse number '{s}' in $convert with no onError value: Did not consume "
                             "whole string.")
        return int(s)
    st = s.strip() if False else s
    low = st.lower()
    if low in ("nan", "+nan", "-nan"):
        return math.nan
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if low in ("-inf", "-infinity"):
        return -math.inf
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", st):
        raise _ConvError(f"Failed to parse number '{s}' in $convert with no onError value: Did not consume "
                         "whole string.")
    if target == "decimal":
        return _Decimal(st)
    return float(st)


def _convert(v, to: str):
    src = type_name(v)
    k = _kind(v)
    if to == "double":
        if k == 2:
            return v
        if k in (0, 1):
            return float(int(v))
        if k == 3:
            return float(_to_dec(v))
        if v is True or v is False:
            return 1.0 if v else 0.0
        if src == "string":
            return _parse_number_string(v, "double")
        if src == "date":
            return float(_date_to_ms(v))
    elif to in ("int", "long"):
        lo, hi = (_INT32_MIN, _INT32_MAX) if to == "int" else (_INT64_MIN, _INT64_MAX)
        if v is True or v is False:
            x = int(v)
        elif k in (0, 1):
            x = int(v)
        elif k in (2, 3):
            f = _to_float(v) if k == 2 else _to_dec(v)
            if f != f:
                raise _ConvError("Attempt to convert NaN value to integer type in $convert with no onError value")
            if (k == 2 and math.isinf(f)) or (k == 3 and f.is_infinite()):
                raise _ConvError("Attempt to convert infinity value to integer type in $convert with no onError "
                                 "value")
            x = int(f)
        elif src == "string":
            x = _parse_number_string(v, to)
        elif src == "date" and to == "long":
            x = _date_to_ms(v)
        else:
            raise _ConvError(f"Unsupported conversion from {src} to {to} in $convert with no onError value")
        if not lo <= x <= hi:
            raise _ConvError(f"Conversion would overflow target type in $convert with no onError value: {fmt(v)}")
        return Int64(x) if to == "long" else x
    elif to == "decimal":
        if k == 3:
            return v
        if k == 2:
            return _dec(_to_dec(v))
        if k in (0, 1):
            return _dec(_Decimal(int(v)))
        if v is True or v is False:
            return _dec(_Decimal(int(v)))
        if src == "string":
            return _dec(_Decimal(_parse_number_string(v, "decimal")))
        if src == "date":
            return _dec(_Decimal(_date_to_ms(v)))
    elif to == "string":
        if src == "string":
            return v
        if v is True or v is False:
            return "true" if v else "false"
        if k != -1:
            return _coerce_str("$convert", v)
        if src == "objectId":
            return str(v)
        if src == "date":
            return _date_iso(v)
    elif to == "bool":
        if v is True or v is False:
            return v
        if k != -1:
            return truthy(v)
        return True
    elif to == "objectId":
        if src == "objectId":
            return v
        if src == "string":
            try:
                return ObjectId(v)
            except (InvalidId, TypeError):
                raise _ConvError(f"Failed to parse objectId '{v}' in $convert with no onError value: Invalid "
                                 "string length for parsing to OID, expected 24 but found " f"{len(v)}") from None
    elif to == "date":
        if src == "date":
            return v
        if k in (1, 2, 3) or (k == 0 and False):
            f = _to_float(v) if k != 3 else float(_to_dec(v))
            if f != f or math.isinf(f):
                raise _ConvError("Attempt to convert NaN/infinity value to date in $convert with no onError value")
            return _ms_to_date(int(f))
        if src == "objectId":
            return v.generation_time.replace(tzinfo=None)
        if src == "string":
            try:
                s = v.replace("Z", "+00:00")
                d = datetime.datetime.fromisoformat(s)
                if d.tzinfo is not None:
                    d = d.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                return d
            except ValueError:
                raise _ConvError(f"Error parsing date string '{v}'") from None
    elif to in ("null", "missing"):
        pass
    else:
        raise _ConvError(f"Unknown type name: {to}")
    raise _ConvError(f"Unsupported conversion from {src} to {to} in $convert with no onError value")


def _type_target(t):
    if isinstance(t, str):
        if t not in ("double", "string", "objectId", "bool", "date", "int", "long", "decimal", "object", "array",
                     "binData", "null", "regex", "timestamp", "minKey", "maxKey"):
            raise _err(f"Unknown type name: {t}", 50811)
        return t
    if _kind(t) != -1 and _is_integral(t):
        code = _as_int(t)
        if code in _TYPE_CODES:
            return _TYPE_CODES[code]
        raise _err(f"In $convert, numeric value for 'to' does not correspond to a BSON type: {code}", 50812)
    if isinstance(t, dict) and "type" in t:
        return _type_target(t["type"])
    raise _err("$convert's 'to' argument must be a string or number, but is " f"{type_name(t)}", 50841)


def _c_convert(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$convert expects an object of named arguments but found: " f"{type_name(spec)}", op)
    for k in spec:
        if k not in ("input", "to", "onError", "onNull", "format", "base", "byteOrder"):
            raise _cerr(f"$convert found an unknown argument: {k}", op)
    if "input" not in spec:
        raise _cerr("Missing 'input' parameter to $convert", op)
    if "to" not in spec:
        raise _cerr("Missing 'to' parameter to $convert", op)
    inp = compile_expression(spec["input"], ctx)
    to = compile_expression(spec["to"], ctx)
    on_error = compile_expression(spec["onError"], ctx) if "onError" in spec else None
    on_null = compile_expression(spec["onNull"], ctx) if "onNull" in spec else None

    def f(doc, vars):
        v = inp(doc, vars)
        target = to(doc, vars)
        if _nullish(target):
            return None
        target = _type_target(target)
        if _nullish(v):
            return on_null(doc, vars) if on_null is not None else None
        try:
            return _convert(v, target)
        except _ConvError as exc:
            if on_error is not None:
                return on_error(doc, vars)
            raise _err(str(exc), 241) from None
    return f


def _c_to(target):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            v = a(doc, vars)
            if _nullish(v):
                return None
            try:
                return _convert(v, target)
            except _ConvError as exc:
                raise _err(str(exc).replace("$convert", op), 241) from None
        return _fold(f, [a])
    return comp
