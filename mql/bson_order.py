"""BSON value model: missing vs null, type names, and MongoDB's comparison order across types.

Documents are plain Python dicts as decoded by fastavro / PyMongo.  Values may be ``None``
(null), bool, int / ``bson.Int64`` / float / ``bson.Decimal128`` (all numbers), str, dict, list,
bytes / ``bson.Binary``, ``ObjectId``, datetime, ``Timestamp``, ``Regex`` / ``re.Pattern``,
``MinKey`` / ``MaxKey``.  A field that does not exist is the ``MISSING`` sentinel (never stored in
an output document; ``None`` inside arrays).

Comparison order (MongoDB "Comparison/Sort Order"): MinKey < missing < null < numbers < strings <
objects < arrays < binary < ObjectId < bool < date < timestamp < regex < MaxKey.  Numbers of
different types compare by value; NaN sorts below every other number and equals NaN.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import create_decimal128_context

__all__ = [
    "MISSING", "type_name", "rank", "compare", "values_equal", "truthy", "group_key",
    "is_number", "to_pynum", "num_type", "DEC_CTX", "sort_key_compare", "fmt", "NUMBER_TYPES",
]


class _Missing:
    """The value of a field that does not exist (distinct from null)."""

    __slots__ = ()
    _inst = None

    def __new__(cls):
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (_Missing, ())


MISSING = _Missing()

DEC_CTX = create_decimal128_context()
_Decimal = decimal.Decimal
_PatternType = re.Pattern

NUMBER_TYPES = frozenset({int, float, Int64, Decimal128})

# canonical type ranks (mongo::canonicalizeBSONType)
R_MINKEY, R_MISSING, R_NULL, R_NUMBER, R_STRING, R_OBJECT, R_ARRAY = -1, 0, 5, 10, 15, 20, 25
R_BINARY, R_OID, R_BOOL, R_DATE, R_TIMESTAMP, R_REGEX, R_CODE, R_MAXKEY = 30, 35, 40, 45, 47, 50, 60, 127

_RANK = {
    type(None): R_NULL, _Missing: R_MISSING, bool: R_BOOL, int: R_NUMBER, Int64: R_NUMBER, float: R_NUMBER,
    Decimal128: R_NUMBER, _Decimal: R_NUMBER, str: R_STRING, dict: R_OBJECT, list: R_ARRAY, tuple: R_ARRAY,
    bytes: R_BINARY, Binary: R_BINARY, uuid.UUID: R_BINARY, ObjectId: R_OID, datetime.datetime: R_DATE,
    DatetimeMS: R_DATE, Timestamp: R_TIMESTAMP, Regex: R_REGEX, _PatternType: R_REGEX, Code: R_CODE,
    MinKey: R_MINKEY, MaxKey: R_MAXKEY,
}


def rank(v) -> int:
    r = _RANK.get(type(v))
    if r is not None:
        return r
    if isinstance(v, bool):
        return R_BOOL
    if isinstance(v, (int, float)):
        return R_NUMBER
    if isinstance(v, str):
        return R_STRING
    if isinstance(v, dict):
        return R_OBJECT
    if isinstance(v, (list, tuple)):
        return R_ARRAY
    if isinstance(v, (bytes, bytearray)):
        return R_BINARY
    if isinstance(v, datetime.datetime):
        return R_DATE
    raise TypeError(f"unsupported value type {type(v).__name__}")


_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def type_name(v) -> str:
    """The $type name of a value ("missing" for a missing field)."""
    t = type(v)
    if t is float:
        return "double"
    if t is str:
        return "string"
    if t is int:
        return "int" if _INT32_MIN <= v <= _INT32_MAX else "long"
    if t is Int64:
        return "long"
    if t is dict:
        return "object"
    if t is list:
        return "array"
    if v is None:
        return "null"
    if v is MISSING:
        return "missing"
    if t is bool:
        return "bool"
    r = rank(v)
    if r == R_NUMBER:
        if isinstance(v, (Decimal128, _Decimal)):
            return "decimal"
        if isinstance(v, float):
            return "double"
        return "long" if isinstance(v, Int64) or not (_INT32_MIN <= v <= _INT32_MAX) else "int"
    return {
        R_STRING: "string", R_OBJECT: "object", R_ARRAY: "array", R_BINARY: "binData", R_OID: "objectId",
        R_BOOL: "bool", R_DATE: "date", R_TIMESTAMP: "timestamp", R_REGEX: "regex", R_CODE: "javascript",
        R_MINKEY: "minKey", R_MAXKEY: "maxKey",
    }[r]


def is_number(v) -> bool:
    t = type(v)
    if t in NUMBER_TYPES:
        return True
    if t is bool:
        return False
    return isinstance(v, (int, float, Decimal128, _Decimal))


def num_type(v) -> str:
    """'int' | 'long' | 'double' | 'decimal' for a number."""
    return type_name(v)


def to_pynum(v):
    """A number as a Python int / float / Decimal (Decimal128 → Decimal, Int64 → int)."""
    t = type(v)
    if t is float or t is int:
        return v
    if t is Int64:
        return int(v)
    if t is Decimal128:
        return v.to_decimal()
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        return int(v)
    return v


def _isnan(x) -> bool:
    return x != x


def _num_cmp(a, b) -> int:
    a = to_pynum(a)
    b = to_pynum(b)
    an, bn = a != a, b != b  # NaN (float or Decimal)
    if an or bn:
        if an and bn:
            return 0
        return -1 if an else 1
    return (a > b) - (a < b)


def _date_ms(v) -> int:
    if isinstance(v, DatetimeMS):
        return int(v)
    if v.tzinfo is not None:
        v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    delta = v - datetime.datetime(1970, 1, 1)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _bin_parts(v):
    if isinstance(v, uuid.UUID):
        return 4, v.bytes
    if isinstance(v, Binary):
        return v.subtype, bytes(v)
    return 0, bytes(v)


def _regex_parts(v):
    if isinstance(v, Regex):
        flags = v.flags
        pattern = v.pattern
    else:
        flags = v.flags
        pattern = v.pattern
    if isinstance(flags, int):
        s = ""
        for ch, f in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)):
            if flags & f:
                s += ch
        flags = s
    return pattern, "".join(sorted(flags))


def compare(a, b) -> int:
    """MongoDB's total order of BSON values (-1, 0, 1); MISSING < null."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is float or ta is int):
        if a == b:
            return 0
        if a < b:
            return -1
        if a > b:
            return 1
        return _num_cmp(a, b)  # NaN involved
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == R_NUMBER:
        return _num_cmp(a, b)
    if ra == R_STRING:
        return (a > b) - (a < b)
    if ra == R_OBJECT:
        ia, ib = iter(a.items()), iter(b.items())
        while True:
            ea = next(ia, None)
            eb = next(ib, None)
            if ea is None or eb is None:
                return 0 if ea is eb else (-1 if ea is None else 1)
            r1, r2 = rank(ea[1]), rank(eb[1])
            if r1 != r2:
                return -1 if r1 < r2 else 1
            if ea[0] != eb[0]:
                return -1 if ea[0] < eb[0] else 1
            c = compare(ea[1], eb[1])
            if c:
                return c
    if ra == R_ARRAY:
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra in (R_NULL, R_MISSING, R_MINKEY, R_MAXKEY):
        return 0
    if ra == R_BOOL:
        return (bool(a) > bool(b)) - (bool(a) < bool(b))
    if ra == R_DATE:
        x, y = _date_ms(a), _date_ms(b)
        return (x > y) - (x < y)
    if ra == R_OID:
        x, y = a.binary, b.binary
        return (x > y) - (x < y)
    if ra == R_BINARY:
        sa, ba = _bin_parts(a)
        sb, bb = _bin_parts(b)
        x, y = (len(ba), sa, ba), (len(bb), sb, bb)
        return (x > y) - (x < y)
    if ra == R_TIMESTAMP:
        x, y = (a.time, a.inc), (b.time, b.inc)
        return (x > y) - (x < y)
    if ra == R_REGEX:
        x, y = _regex_parts(a), _regex_parts(b)
        return (x > y) - (x < y)
    if ra == R_CODE:
        x, y = str(a), str(b)
        return (x > y) - (x < y)
    return 0


def values_equal(a, b) -> bool:
    ta = type(a)
    if ta is type(b) and (ta is float or ta is int or ta is str):
        return a == b or (a != a and b != b)
    return compare(a, b) == 0


def truthy(v) -> bool:
    """Aggregation truthiness: false, null, missing and numeric zero are false."""
    if v is True:
        return True
    if v is False or v is None or v is MISSING:
        return False
    t = type(v)
    if t is int or t is float:
        return v != 0
    if t is Int64:
        return int(v) != 0
    if t is Decimal128:
        return not v.to_decimal().is_zero()
    return True


def group_key(v):
    """A hashable key equal for values MongoDB considers equal ($group, $addToSet, sets)."""
    t = type(v)
    if t is str:
        return ("s", v)
    r = rank(v)
    if r == R_NUMBER:
        x = to_pynum(v)
        if x != x:
            return ("nan",)
        if isinstance(x, float):
            if math.isinf(x):
                return ("n", x)
            if x.is_integer():
                return ("n", int(x))
            return ("n", x)
        if isinstance(x, _Decimal):
            if x.is_infinite():
                return ("n", float(x))
            if x == x.to_integral_value():
                return ("n", int(x))
            f = float(x)
            if _Decimal(f) == x:
                return ("n", f)
            return ("d", x.normalize())
        return ("n", x)
    if r == R_OBJECT:
        return ("o", tuple((k, group_key(x)) for k, x in v.items()))
    if r == R_ARRAY:
        return ("a", tuple(group_key(x) for x in v))
    if r in (R_NULL, R_MISSING):
        return ("null",)
    if r == R_BOOL:
        return ("b", bool(v))
    if r == R_DATE:
        return ("t", _date_ms(v))
    if r == R_REGEX:
        return ("r",) + _regex_parts(v)
    if r == R_BINARY:
        return ("bin",) + _bin_parts(v)
    if r == R_OID:
        return ("oid", v.binary)
    if r == R_TIMESTAMP:
        return ("ts", v.time, v.inc)
    return (r, str(v))


def sort_key_compare(a, b) -> int:
    """Comparison of $sort keys (lists of values), used with functools.cmp_to_key."""
    return compare(a, b)


def fmt(v) -> str:
    """A value rendered roughly like MongoDB's Value::toString for error messages."""
    if v is MISSING:
        return "missing"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is float:
        if v.is_integer() and abs(v) < 1e16:
            return str(int(v))
        return repr(v)
    if t is str:
        return f'"{v}"'
    if t is dict:
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    if t is list:
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if t is Decimal128:
        return str(v.to_decimal())
    return str(v)
