"""Aggregation expressions compiled to closures ``f(doc, vars) -> value``.

``doc`` is ``$$CURRENT``; ``vars`` is a dict of variables in scope (``ROOT`` plus user variables
and ``this`` / ``value`` inside ``$map`` / ``$filter`` / ``$reduce``).  A field that does not
exist evaluates to ``MISSING`` (distinct from ``None`` = null); ``$$REMOVE`` is ``MISSING``.
Outputs may share sub-objects with the input and with literal constants: never mutate them.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import math
import operator
import re

from bson import Decimal128, Int64, ObjectId
from bson.errors import InvalidId

from . import regex as rx
from .bson_order import DEC_CTX, MISSING, compare, fmt, group_key, is_number, truthy, type_name
from .errors import FilterCompileError, FilterRuntimeError, UnsupportedOperator
from .paths import expr_getter, split_path

__all__ = ["compile_expression", "Ctx", "EXPRESSION_OPERATORS", "FORBIDDEN_OPERATORS", "evaluate"]

_Decimal = decimal.Decimal

FORBIDDEN_OPERATORS = frozenset({
    "$lookup", "$out", "$merge", "$where", "$function", "$accumulator", "$unionWith", "$graphLookup",
})

SYSTEM_VARIABLES = frozenset({"ROOT", "CURRENT", "REMOVE", "NOW"})


class Ctx:
    """Compile-time scope: the user variables defined at this point."""

    __slots__ = ("variables",)

    def __init__(self, variables=frozenset()):
        self.variables = frozenset(variables)

    def with_vars(self, names) -> "Ctx":
        return Ctx(self.variables | set(names))


def _err(msg, code=None):
    return FilterRuntimeError(msg, code=code)


def _cerr(msg, op=None):
    return FilterCompileError(msg, operator=op)


# --- constants ------------------------------------------------------------------------------

def _const(value):
    def const(doc, vars):
        return value
    const.is_const = True
    const.value = value
    return const


def _is_const(fn) -> bool:
    return getattr(fn, "is_const", False)


def _fold(fn, args):
    """Evaluate ``fn`` at compile time when all its arguments are constants (errors stay at run time)."""
    if all(_is_const(a) for a in args):
        try:
            return _const(fn(None, {}))
        except FilterRuntimeError:
            return fn
    return fn


# --- numbers --------------------------------------------------------------------------------

_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _kind(v) -> int:
    """0 int, 1 long, 2 double, 3 decimal; -1 not a number."""
    t = type(v)
    if t is float:
        return 2
    if t is int:
        return 0 if _INT32_MIN <= v <= _INT32_MAX else 1
    if t is Int64:
        return 1
    if t is Decimal128:
        return 3
    if t is bool:
        return -1
    if isinstance(v, _Decimal):
        return 3
    if isinstance(v, float):
        return 2
    if isinstance(v, int):
        return 1 if isinstance(v, Int64) else 0
    return -1


def _to_dec(v) -> _Decimal:
    t = type(v)
    if t is Decimal128:
        return v.to_decimal()
    if isinstance(v, _Decimal):
        return v
    if isinstance(v, float):
        if v != v or math.isinf(v):
            return _Decimal(repr(v).replace("inf", "Infinity"))
        return _Decimal(format(v, ".15g"))
    return _Decimal(int(v))


def _dec(d: _Decimal):
    return Decimal128(DEC_CTX.create_decimal(d))


def _int_result(x: int, kind: int):
    if _INT64_MIN <= x <= _INT64_MAX:
        if kind == 1 and _INT32_MIN <= x <= _INT32_MAX:
            return Int64(x)
        return x
    return float(x)


def _to_float(v) -> float:
    t = type(v)
    if t is float:
        return v
    if t is Decimal128:
        return float(v.to_decimal())
    return float(v)


def _is_integral(v) -> bool:
    k = _kind(v)
    if k in (0, 1):
        return True
    if k == 2:
        return v == v and not math.isinf(v) and float(v).is_integer()
    if k == 3:
        d = _to_dec(v)
        return d.is_finite() and d == d.to_integral_value()
    return False


def _as_int(v):
    return int(_to_dec(v)) if _kind(v) == 3 else int(v)


def _nullish(v) -> bool:
    return v is None or v is MISSING


def _date_to_ms(d: datetime.datetime) -> int:
    if d.tzinfo is not None:
        d = d.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    delta = d - datetime.datetime(1970, 1, 1)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _ms_to_date(ms) -> datetime.datetime:
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(ms))


def _add_values(vals, op="$add"):
    kind = 0
    ints = 0
    floats = []
    decs = []
    date = None
    for v in vals:
        k = _kind(v)
        if k == -1:
            if _nullish(v):
                return None
            if isinstance(v, datetime.datetime):
                if date is not None:
                    raise _err("only one date allowed in an $add expression", 16612)
                date = v
                continue
            raise _err(f"{op} only supports numeric or date types, not {type_name(v)}", 16554)
        if k > kind:
            kind = k
        if k == 2:
            floats.append(v)
        elif k == 3:
            decs.append(v)
        else:
            ints += int(v)
    if date is not None:
        if kind == 3:
            total = sum((_to_dec(x) for x in decs), _Decimal(0)) + sum(_to_dec(x) for x in floats) + ints
            total = float(total)
        else:
            total = math.fsum(floats) + ints if floats else ints
        if total != total or math.isinf(total):
            raise _err("Date overflow", 40150)
        # llround: half away from zero
        return _ms_to_date(_date_to_ms(date) + int(math.copysign(math.floor(abs(total) + 0.5), total)))
    if kind == 3:
        total = DEC_CTX.create_decimal(ints)
        for x in decs:
            total = DEC_CTX.add(total, _to_dec(x))
        for x in floats:
            total = DEC_CTX.add(total, _to_dec(x))
        return _dec(total)
    if kind == 2:
        total = 0.0
        if ints:
            total = float(ints)
        for x in floats:
            total += x
        return total
    return _int_result(ints, kind)


def _mul_values(vals):
    kind = 0
    prod = 1
    fprod = None
    dprod = None
    for v in vals:
        k = _kind(v)
        if k == -1:
            if _nullish(v):
                return None
            raise _err(f"$multiply only supports numeric types, not {type_name(v)}", 16555)
        if k > kind:
            kind = k
    if kind == 3:
        dprod = _Decimal(1)
        for v in vals:
            dprod = DEC_CTX.multiply(dprod, _to_dec(v))
        return _dec(dprod)
    if kind == 2:
        fprod = 1.0
        for v in vals:
            fprod *= _to_float(v)
        return fprod
    for v in vals:
        prod *= int(v)
    return _int_result(prod, kind)


def _subtract(a, b):
    ta, tb = type(a), type(b)
    if ta is float and tb is float:
        return a - b
    if _nullish(a) or _nullish(b):
        return None
    if isinstance(a, datetime.datetime):
        if isinstance(b, datetime.datetime):
            return Int64(_date_to_ms(a) - _date_to_ms(b))
        if is_number(b):
            f = _to_float(b)
            if f != f or math.isinf(f):
                raise _err("Date overflow", 40150)
            return _ms_to_date(_date_to_ms(a) - int(f))  # coerceToLong: truncation
        raise _err(f"can't $subtract {type_name(b)} from date", 16613)
    ka, kb = _kind(a), _kind(b)
    if ka == -1 or kb == -1:
        raise _err(f"can't $subtract {type_name(b)} from {type_name(a)}", 16556)
    kind = max(ka, kb)
    if kind == 3:
        return _dec(DEC_CTX.subtract(_to_dec(a), _to_dec(b)))
    if kind == 2:
        return _to_float(a) - _to_float(b)
    return _int_result(int(a) - int(b), kind)


def _divide(a, b):
    if _nullish(a) or _nullish(b):
        return None
    ka, kb = _kind(a), _kind(b)
    if ka == -1 or kb == -1:
        raise _err(f"$divide only supports numeric types, not {type_name(a)} and {type_name(b)}", 16609)
    if ka == 3 or kb == 3:
        db = _to_dec(b)
        if db.is_zero():
            raise _err("can't $divide by zero", 16608)
        return _dec(DEC_CTX.divide(_to_dec(a), db))
    fb = _to_float(b)
    if fb == 0:
        raise _err("can't $divide by zero", 16608)
    if ka != 2 and kb != 2:
        return int(a) / int(b)
    return _to_float(a) / fb


def _mod(a, b):
    if _nullish(a) or _nullish(b):
        return None
    ka, kb = _kind(a), _kind(b)
    if ka == -1 or kb == -1:
        raise _err(f"$mod only supports numeric types, not {type_name(a)} and {type_name(b)}", 16611)
    kind = max(ka, kb)
    if kind == 3:
        db = _to_dec(b)
        if db.is_zero():
            raise _err("can't $mod by 0", 16610)
        return _dec(DEC_CTX.remainder(_to_dec(a), db))
    if kind == 2:
        fb = _to_float(b)
        if fb == 0:
            raise _err("can't $mod by 0", 16610)
        return math.fmod(_to_float(a), fb)
    ib = int(b)
    if ib == 0:
        raise _err("can't $mod by 0", 16610)
    ia = int(a)
    r = abs(ia) % abs(ib)
    return _int_result(-r if ia < 0 else r, kind)


def _num_arg(op, v, code=28765):
    """Check a numeric argument of a math operator; returns None for nullish."""
    if _kind(v) == -1:
        if _nullish(v):
            return None
        raise _err(f"{op} only supports numeric types, not {type_name(v)}", code)
    return v


def _abs(v):
    if _num_arg("$abs", v) is None:
        return None
    k = _kind(v)
    if k == 3:
        return _dec(abs(_to_dec(v)))
    if k == 2:
        return abs(v)
    r = abs(int(v))
    if r > _INT64_MAX:
        raise _err("can't take $abs of long long min", 28680)
    return _int_result(r, k)


def _ceil_floor(op, v, up: bool):
    if _num_arg(op, v) is None:
        return None
    k = _kind(v)
    if k in (0, 1):
        return v
    if k == 3:
        d = _to_dec(v)
        if not d.is_finite():
            return v
        return _dec(d.to_integral_value(rounding=decimal.ROUND_CEILING if up else decimal.ROUND_FLOOR))
    if v != v or math.isinf(v):
        return v
    return float(math.ceil(v) if up else math.floor(v))


def _round_trunc(op, v, place, truncate: bool):
    if _nullish(v):
        return None
    if _kind(v) == -1:
        raise _err(f"{op} only supports numeric types, not {type_name(v)}", 51081)
    if _nullish(place):
        return None
    if not _is_integral(place):
        raise _err(f"{op} requires \"place\" argument to be an integer between -20 and 100", 51082)
    place = _as_int(place)
    if place < -20 or place > 100:
        raise _err(f"cannot apply {op} with precision value {place} value must be in [-20, 100]", 51083)
    mode = decimal.ROUND_DOWN if truncate else decimal.ROUND_HALF_EVEN
    k = _kind(v)
    quantum = _Decimal(1).scaleb(-place)
    if k in (0, 1):
        if place >= 0:
            return v
        d = _Decimal(int(v)).quantize(quantum, rounding=mode, context=decimal.Context(prec=60))
        return _int_result(int(d), k)
    if k == 3:
        d = _to_dec(v)
        if not d.is_finite():
            return v
        try:
            return _dec(d.quantize(quantum, rounding=mode, context=decimal.Context(prec=60)))
        except decimal.InvalidOperation:
            return v
    if v != v or math.isinf(v) or v == 0:
        return v
    if place > 20:
        return v
    if not truncate:
        return float(round(v, place))  # correctly rounded from the exact binary value, half to even
    d = _Decimal(v).quantize(quantum, rounding=mode, context=decimal.Context(prec=400))
    return float(d)


def _sqrt(v):
    if _num_arg("$sqrt", v, 28765) is None:
        return None
    if _kind(v) == 3:
        d = _to_dec(v)
        if d < 0:
            raise _err("$sqrt's argument must be greater than or equal to 0", 28714)
        return _dec(DEC_CTX.sqrt(d))
    f = _to_float(v)
    if f < 0:
        raise _err("$sqrt's argument must be greater than or equal to 0", 28714)
    return math.sqrt(f)


def _exp(v):
    if _num_arg("$exp", v, 28765) is None:
        return None
    if _kind(v) == 3:
        return _dec(DEC_CTX.exp(_to_dec(v)))
    try:
        return math.exp(_to_float(v))
    except OverflowError:
        return math.inf


def _ln(v):
    if _num_arg("$ln", v, 28765) is None:
        return None
    if _kind(v) == 3:
        d = _to_dec(v)
        if not d > 0:
            raise _err(f"$ln's argument must be a positive number, but is {fmt(v)}", 28766)
        return _dec(DEC_CTX.ln(d))
    f = _to_float(v)
    if f != f:
        return f
    if f <= 0:
        raise _err(f"$ln's argument must be a positive number, but is {fmt(v)}", 28766)
    return math.log(f)


def _log10(v):
    if _num_arg("$log10", v, 28765) is None:
        return None
    if _kind(v) == 3:
        d = _to_dec(v)
        if not d > 0:
            raise _err(f"$log10's argument must be a positive number, but is {fmt(v)}", 28761)
        return _dec(DEC_CTX.log10(d))
    f = _to_float(v)
    if f != f:
        return f
    if f <= 0:
        raise _err(f"$log10's argument must be a positive number, but is {fmt(v)}", 28761)
    return math.log10(f)


def _log(v, base):
    if _nullish(v) or _nullish(base):
        return None
    if _kind(v) == -1:
        raise _err(f"$log's argument must be numeric, not {type_name(v)}", 28756)
    if _kind(base) == -1:
        raise _err(f"$log's base must be numeric, not {type_name(base)}", 28757)
    if _kind(v) == 3 or _kind(base) == 3:
        d, b = _to_dec(v), _to_dec(base)
        if not d > 0:
            raise _err(f"$log's argument must be a positive number, but is {fmt(v)}", 28758)
        if not b > 0 or b == 1:
            raise _err(f"$log's base must be a positive number not equal to 1, but is {fmt(base)}", 28759)
        return _dec(DEC_CTX.divide(DEC_CTX.ln(d), DEC_CTX.ln(b)))
    f, b = _to_float(v), _to_float(base)
    if f != f:
        return f
    if b != b:
        return b
    if f <= 0:
        raise _err(f"$log's argument must be a positive number, but is {fmt(v)}", 28758)
    if b <= 0 or b == 1:
        raise _err(f"$log's base must be a positive number not equal to 1, but is {fmt(base)}", 28759)
    return math.log(f) / math.log(b)


def _pow(base, exp):
    if _nullish(base) or _nullish(exp):
        return None
    kb, ke = _kind(base), _kind(exp)
    if kb == -1:
        raise _err(f"$pow's base must be numeric, not {type_name(base)}", 28762)
    if ke == -1:
        raise _err(f"$pow's exponent must be numeric, not {type_name(exp)}", 28763)
    if (_to_float(base) == 0) and _to_float(exp) < 0:
        raise _err("$pow cannot take a base of 0 and a negative exponent", 28764)
    kind = max(kb, ke)
    if kind == 3:
        return _dec(DEC_CTX.power(_to_dec(base), _to_dec(exp)))
    if kind == 2:
        try:
            r = math.pow(_to_float(base), _to_float(exp))
        except OverflowError:
            r = math.inf
        except ValueError:
            r = math.nan
        return r
    b, e = int(base), int(exp)
    if e < 0:
        if b == 1:
            return _int_result(1, kind)
        if b == -1:
            return _int_result(1 if e % 2 == 0 else -1, kind)
        return math.pow(b, e)
    if abs(b) > 1 and e > 64:
        return math.pow(b, e)
    return _int_result(b ** e, kind)


# --- accumulators (also used by $group) ------------------------------------------------------

def acc_sum(values):
    kind = 0
    ints = 0
    floats = []
    decs = None
    for v in values:
        t = type(v)
        if t is float:
            floats.append(v)
            if kind < 2:
                kind = 2
            continue
        k = _kind(v)
        if k == -1:
            continue
        if k > kind:
            kind = k
        if k == 3:
            if decs is None:
                decs = []
            decs.append(v)
        elif k == 2:
            floats.append(float(v))
        else:
            ints += int(v)
    if kind == 3:
        total = DEC_CTX.create_decimal(ints)
        for x in decs:
            total = DEC_CTX.add(total, _to_dec(x))
        for x in floats:
            total = DEC_CTX.add(total, _to_dec(x))
        return _dec(total)
    if kind == 2:
        if ints:
            floats.append(float(ints))
        try:
            return math.fsum(floats)
        except (OverflowError, ValueError):
            s = 0.0
            for x in floats:
                s += x
            return s
    return _int_result(ints, kind)


def acc_avg(values):
    n = 0
    floats = []
    ints = 0
    decs = None
    for v in values:
        t = type(v)
        if t is float:
            floats.append(v)
            n += 1
            continue
        k = _kind(v)
        if k == -1:
            continue
        n += 1
        if k == 3:
            if decs is None:
                decs = []
            decs.append(v)
        elif k == 2:
            floats.append(float(v))
        else:
            ints += int(v)
    if n == 0:
        return None
    if decs is not None:
        total = DEC_CTX.create_decimal(ints)
        for x in decs:
            total = DEC_CTX.add(total, _to_dec(x))
        for x in floats:
            total = DEC_CTX.add(total, _to_dec(x))
        return _dec(DEC_CTX.divide(total, _Decimal(n)))
    if ints:
        floats.append(float(ints))
    try:
        total = math.fsum(floats)
    except (OverflowError, ValueError):
        total = 0.0
        for x in floats:
            total += x
    return total / n


def acc_min(values):
    best = MISSING
    for v in values:
        if v is None or v is MISSING:
            continue
        if best is MISSING or compare(v, best) < 0:
            best = v
    return None if best is MISSING else best


def acc_max(values):
    best = MISSING
    for v in values:
        if v is None or v is MISSING:
            continue
        if best is MISSING or compare(v, best) > 0:
            best = v
    return None if best is MISSING else best


def _welford(values):
    n = 0
    mean = 0.0
    m2 = 0.0
    for v in values:
        k = _kind(v)
        if k == -1:
            continue
        x = _to_float(v)
        n += 1
        delta = x - mean
        if delta != 0.0:
            mean += delta / n
            m2 += delta * (x - mean)
    return n, m2


def acc_std_pop(values):
    n, m2 = _welford(values)
    if n == 0:
        return None
    return math.sqrt(m2 / n) if m2 >= 0 else 0.0


def acc_std_samp(values):
    n, m2 = _welford(values)
    if n < 2:
        return None
    return math.sqrt(m2 / (n - 1)) if m2 >= 0 else 0.0


ARRAY_ACCUMULATORS = {
    "$sum": acc_sum, "$avg": acc_avg, "$min": acc_min, "$max": acc_max,
    "$stdDevPop": acc_std_pop, "$stdDevSamp": acc_std_samp,
}


# --- compile --------------------------------------------------------------------------------

_VAR_NAME = re.compile(r"^[a-z\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*$")


def check_user_var_name(name: str, op: str) -> None:
    if not isinstance(name, str) or not name:
        raise _cerr(f"{op}: empty variable names are not allowed", op)
    if not _VAR_NAME.match(name):
        raise _cerr(f"{op}: '{name}' starts with an invalid character for a user variable name"
                    if not re.match(r"^[a-z\u0080-\uffff]", name) else
                    f"{op}: '{name}' contains an invalid character for a variable name", op)


def _compile_field_path(path: str):
    if path == "$":
        raise _cerr("'$' by itself is not a valid FieldPath")
    parts = split_path(path[1:])
    if any(p == "" for p in parts):
        raise _cerr(f"FieldPath must not contain empty field names: {path}")
    if any(p.startswith("$") for p in parts):
        raise _cerr(f"FieldPath field names may not start with '$': {path}")
    get = expr_getter(parts)
    if len(parts) == 1:
        a = parts[0]

        def field1(doc, vars):
            if type(doc) is dict:
                return doc.get(a, MISSING)
            return get(doc)
        return field1

    if len(parts) == 2:
        a, b = parts

        def field2(doc, vars):
            if type(doc) is dict:
                w = doc.get(a, MISSING)
                if type(w) is dict:
                    return w.get(b, MISSING)
            return get(doc)
        return field2

    def field(doc, vars):
        return get(doc)
    return field


def _compile_variable(ref: str, ctx: Ctx):
    body = ref[2:]
    name, _, rest = body.partition(".")
    if not name:
        raise _cerr(f"empty variable name in {ref!r}")
    parts = split_path(rest) if rest else ()
    if any(p == "" for p in parts):
        raise _cerr(f"FieldPath must not contain empty field names: {ref}")
    get = expr_getter(parts) if parts else None
    if name == "CURRENT":
        if get is None:
            return lambda doc, vars: doc
        return lambda doc, vars: get(doc)
    if name == "ROOT":
        if get is None:
            return lambda doc, vars: vars["ROOT"]
        return lambda doc, vars: get(vars["ROOT"])
    if name == "REMOVE":
        return _const(MISSING)
    if name == "NOW":
        def now(doc, vars):
            n = vars.get("NOW")
            if n is None:
                t = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                n = t.replace(microsecond=t.microsecond // 1000 * 1000)
            return get(n) if get else n
        return now
    if name in ("CLUSTER_TIME", "SEARCH_META", "USER_ROLES"):
        raise UnsupportedOperator(f"unsupported variable $${name}", operator=f"$${name}")
    if name not in ctx.variables:
        raise _cerr(f"Use of undefined variable: {name}")
    if get is None:
        return lambda doc, vars: vars[name]
    if len(parts) == 1:
        field = parts[0]

        def var_field(doc, vars):
            v = vars[name]
            if type(v) is dict:
                return v.get(field, MISSING)
            return get(v)
        return var_field
    return lambda doc, vars: get(vars[name])


def compile_expression(spec, ctx: Ctx | None = None):
    """Compile an aggregation expression into ``f(doc, vars) -> value``."""
    if ctx is None:
        ctx = Ctx()
    t = type(spec)
    if t is str:
        if spec.startswith("$$"):
            return _compile_variable(spec, ctx)
        if spec.startswith("$"):
            return _compile_field_path(spec)
        return _const(spec)
    if t is list:
        fns = [compile_expression(x, ctx) for x in spec]
        if all(_is_const(f) for f in fns):
            return _const([None if f.value is MISSING else f.value for f in fns])

        def array(doc, vars):
            out = []
            for f in fns:
                v = f(doc, vars)
                out.append(None if v is MISSING else v)
            return out
        return array
    if isinstance(spec, dict):
        keys = list(spec)
        if keys and isinstance(keys[0], str) and keys[0].startswith("$"):
            if len(keys) != 1:
                raise _cerr("an expression specification must contain exactly one field, the name of the "
                            f"expression. Found {len(keys)} fields in {fmt(spec)}", keys[0])
            op = keys[0]
            if op in FORBIDDEN_OPERATORS:
                raise UnsupportedOperator(f"forbidden operator {op}", operator=op, forbidden=True)
            comp = EXPRESSION_OPERATORS.get(op)
            if comp is None:
                raise UnsupportedOperator(f"unsupported operator {op}", operator=op)
            return comp(spec[op], ctx, op)
        return _compile_object(spec, ctx)
    return _const(spec)


def _compile_object(spec: dict, ctx: Ctx):
    items = []
    for k, v in spec.items():
        if not isinstance(k, str):
            raise _cerr("field names must be strings")
        if k.startswith("$"):
            raise _cerr(f"field names may not start with '$' (in an object expression): {k}")
        if "." in k:
            raise _cerr(f"FieldPath field names may not contain '.' (in an object expression): {k}")
        items.append((k, compile_expression(v, ctx)))
    if all(_is_const(f) for _, f in items):
        return _const({k: f.value for k, f in items if f.value is not MISSING})

    def obj(doc, vars):
        out = {}
        for k, f in items:
            v = f(doc, vars)
            if v is not MISSING:
                out[k] = v
        return out
    return obj


def evaluate(spec, doc: dict, variables: dict | None = None):
    """Evaluate an expression once (tests, tools)."""
    vars = {"ROOT": doc}
    if variables:
        vars.update(variables)
    return compile_expression(spec, Ctx(set(variables or ())))(doc, vars)


# --- operator helpers -------------------------------------------------------------------------

def _args(op, spec, ctx, nmin, nmax=-1):
    items = spec if isinstance(spec, list) else [spec]
    n = len(items)
    if nmax == -1:
        nmax = nmin
    if n < nmin or (nmax is not None and n > nmax):
        if nmin == nmax:
            raise _cerr(f"Expression {op} takes exactly {nmin} arguments. {n} were passed in.", op)
        if nmax is None:
            raise _cerr(f"Expression {op} takes at least {nmin} arguments, and {n} were passed in.", op)
        if n < nmin:
            raise _cerr(f"Expression {op} takes at least {nmin} arguments, and {n} were passed in.", op)
        raise _cerr(f"Expression {op} takes at most {nmax} arguments, and {n} were passed in.", op)
    return [compile_expression(x, ctx) for x in items]


def _unary(fn, fold=True):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            return fn(a(doc, vars))
        return _fold(f, [a]) if fold else f
    return comp


def _binary(fn):
    def comp(spec, ctx, op):
        a, b = _args(op, spec, ctx, 2)

        def f(doc, vars):
            return fn(a(doc, vars), b(doc, vars))
        return _fold(f, [a, b])
    return comp


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


# --- boolean ----------------------------------------------------------------------------------

def _c_and(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)
    if len(fns) == 2:
        a, b = fns

        def and2(doc, vars):
            x = a(doc, vars)
            if not (x is True or (x is not False and truthy(x))):
                return False
            y = b(doc, vars)
            return y is True or (y is not False and truthy(y))
        return _fold(and2, fns)

    if len(fns) == 3:
        a, b, c = fns

        def and3(doc, vars):
            x = a(doc, vars)
            if not (x is True or (x is not False and truthy(x))):
                return False
            x = b(doc, vars)
            if not (x is True or (x is not False and truthy(x))):
                return False
            x = c(doc, vars)
            return x is True or (x is not False and truthy(x))
        return _fold(and3, fns)

    def and_(doc, vars):
        for f in fns:
            x = f(doc, vars)
            if not (x is True or (x is not False and truthy(x))):
                return False
        return True
    return _fold(and_, fns)


def _c_or(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def or_(doc, vars):
        for f in fns:
            if truthy(f(doc, vars)):
                return True
        return False
    return _fold(or_, fns)


def _c_not(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: not truthy(a(d, v)), [a])


# --- conditional ------------------------------------------------------------------------------

def _c_cond(spec, ctx, op):
    if isinstance(spec, dict):
        for k in spec:
            if k not in ("if", "then", "else"):
                raise _cerr(f"Unrecognized parameter to $cond: {k}", op)
        for k in ("if", "then", "else"):
            if k not in spec:
                raise _cerr(f"Missing '{k}' parameter to $cond", op)
        c, t, e = (compile_expression(spec[k], ctx) for k in ("if", "then", "else"))
    else:
        c, t, e = _args(op, spec, ctx, 3)

    def cond(doc, vars):
        return t(doc, vars) if truthy(c(doc, vars)) else e(doc, vars)
    return _fold(cond, [c, t, e])


def _c_ifnull(spec, ctx, op):
    fns = _args(op, spec, ctx, 2, None)

    def ifnull(doc, vars):
        for f in fns[:-1]:
            v = f(doc, vars)
            if v is not None and v is not MISSING:
                return v
        return fns[-1](doc, vars)
    return _fold(ifnull, fns)


def _c_switch(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$switch requires an object as an argument", op)
    branches = []
    default = None
    for k, v in spec.items():
        if k == "branches":
            if not isinstance(v, list):
                raise _cerr("$switch expected an array for 'branches'", op)
            for b in v:
                if not isinstance(b, dict):
                    raise _cerr("$switch expected each branch to be an object", op)
                for bk in b:
                    if bk not in ("case", "then"):
                        raise _cerr(f"$switch found an unknown argument to a branch: {bk}", op)
                if "case" not in b:
                    raise _cerr("$switch requires each branch have a 'case' expression", op)
                if "then" not in b:
                    raise _cerr("$switch requires each branch have a 'then' expression.", op)
                branches.append((compile_expression(b["case"], ctx), compile_expression(b["then"], ctx)))
        elif k == "default":
            default = compile_expression(v, ctx)
        else:
            raise _cerr(f"$switch found an unknown argument: {k}", op)
    if not branches:
        raise _cerr("$switch requires at least one branch.", op)

    def switch(doc, vars):
        for c, t in branches:
            if truthy(c(doc, vars)):
                return t(doc, vars)
        if default is None:
            raise _err("$switch could not find a matching branch for an input, and no default was specified.",
                       40066)
        return default(doc, vars)
    return switch


# --- variables --------------------------------------------------------------------------------

def _c_let(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$let only supports an object as its argument", op)
    for k in spec:
        if k not in ("vars", "in"):
            raise _cerr(f"Unrecognized parameter to $let: {k}", op)
    if "vars" not in spec:
        raise _cerr("Missing 'vars' parameter to $let", op)
    if "in" not in spec:
        raise _cerr("Missing 'in' parameter to $let", op)
    if not isinstance(spec["vars"], dict):
        raise _cerr("invalid parameter: expected an object (vars)", op)
    defs = []
    for name, e in spec["vars"].items():
        if name != "CURRENT":
            check_user_var_name(name, op)
        defs.append((name, compile_expression(e, ctx)))
    inner = compile_expression(spec["in"], ctx.with_vars(n for n, _ in defs if n != "CURRENT"))

    def let(doc, vars):
        v2 = dict(vars)
        cur = doc
        for name, f in defs:
            val = f(doc, vars)
            if name == "CURRENT":
                cur = val
            else:
                v2[name] = val
        return inner(cur, v2)
    return let


def _c_literal(spec, ctx, op):
    return _const(spec)


# --- arrays -----------------------------------------------------------------------------------

def _c_map(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$map only supports an object as its argument", op)
    for k in spec:
        if k not in ("input", "as", "in"):
            raise _cerr(f"Unrecognized parameter to $map: {k}", op)
    if "input" not in spec:
        raise _cerr("Missing 'input' parameter to $map", op)
    if "in" not in spec:
        raise _cerr("Missing 'in' parameter to $map", op)
    name = spec.get("as", "this")
    check_user_var_name(name, op)
    inp = compile_expression(spec["input"], ctx)
    body = compile_expression(spec["in"], ctx.with_vars([name]))

    def map_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            if _nullish(arr):
                return None
            raise _err(f"input to $map must be an array not {type_name(arr)}", 16883)
        v2 = dict(vars)
        out = []
        for e in arr:
            v2[name] = e
            r = body(doc, v2)
            out.append(None if r is MISSING else r)
        return out
    return map_


def _c_filter(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$filter only supports an object as its argument", op)
    for k in spec:
        if k not in ("input", "as", "cond", "limit"):
            raise _cerr(f"Unrecognized parameter to $filter: {k}", op)
    if "input" not in spec:
        raise _cerr("Missing 'input' parameter to $filter", op)
    if "cond" not in spec:
        raise _cerr("Missing 'cond' parameter to $filter", op)
    name = spec.get("as", "this")
    check_user_var_name(name, op)
    inp = compile_expression(spec["input"], ctx)
    cond = compile_expression(spec["cond"], ctx.with_vars([name]))
    limit = compile_expression(spec["limit"], ctx) if "limit" in spec else None

    def filter_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            if _nullish(arr):
                return None
            raise _err(f"input to $filter must be an array not {type_name(arr)}", 28651)
        n = None
        if limit is not None:
            lv = limit(doc, vars)
            if not _nullish(lv):
                if not _is_integral(lv):
                    raise _err(f"$filter: limit must be represented as a 32-bit integral value: {fmt(lv)}", 327391)
                n = _as_int(lv)
                if n < 1:
                    raise _err(f"$filter: limit must be greater than 0: {n}", 327392)
        v2 = dict(vars)
        out = []
        for e in arr:
            v2[name] = e
            c = cond(doc, v2)
            if c is True or (c is not False and truthy(c)):
                out.append(e)
                if n is not None and len(out) >= n:
                    break
        return out
    return filter_


def _c_reduce(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$reduce only supports an object as its argument", op)
    for k in spec:
        if k not in ("input", "initialValue", "in"):
            raise _cerr(f"Unrecognized parameter to $reduce: {k}", op)
    for k in ("input", "initialValue", "in"):
        if k not in spec:
            raise _cerr(f"Missing '{k}' parameter to $reduce", op)
    inp = compile_expression(spec["input"], ctx)
    init = compile_expression(spec["initialValue"], ctx)
    body = compile_expression(spec["in"], ctx.with_vars(["this", "value"]))

    def reduce_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            if _nullish(arr):
                return None
            raise _err(f"$reduce requires that 'input' be an array, found: {type_name(arr)}", 40080)
        acc = init(doc, vars)
        v2 = dict(vars)
        for e in arr:
            v2["this"] = e
            v2["value"] = acc
            acc = body(doc, v2)
        return acc
    return reduce_


def _array_or_null(op, v, msg, code):
    if type(v) is list:
        return v
    if _nullish(v):
        return None
    raise _err(msg.format(t=type_name(v), v=fmt(v)), code)


def _c_array_elem_at(spec, ctx, op):
    a, i = _args(op, spec, ctx, 2)

    def f(doc, vars):
        arr = a(doc, vars)
        idx = i(doc, vars)
        if _nullish(arr) or _nullish(idx):
            return None
        if type(arr) is not list:
            raise _err(f"$arrayElemAt's first argument must be an array, but is {type_name(arr)}", 28689)
        if _kind(idx) == -1:
            raise _err(f"$arrayElemAt's second argument must be a numeric value, but is {type_name(idx)}", 28690)
        if not _is_integral(idx):
            raise _err(f"$arrayElemAt's second argument must be representable as a 32-bit integer: {fmt(idx)}",
                       28691)
        k = _as_int(idx)
        n = len(arr)
        if k < 0:
            k += n
        if 0 <= k < n:
            return arr[k]
        return MISSING
    return _fold(f, [a, i])


def _c_first_last(first):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            arr = a(doc, vars)
            if type(arr) is list:
                if not arr:
                    return MISSING
                return arr[0] if first else arr[-1]
            if _nullish(arr):
                return None
            raise _err(f"{op}'s argument must be an array, but is {type_name(arr)}", 28689)
        return _fold(f, [a])
    return comp


def _c_size(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def size(doc, vars):
        arr = a(doc, vars)
        if type(arr) is list:
            return len(arr)
        raise _err(f"The argument to $size must be an array. Type of the argument was: {type_name(arr)}", 17124)
    return _fold(size, [a])


def _c_slice(spec, ctx, op):
    fns = _args(op, spec, ctx, 2, 3)

    def slice_(doc, vars):
        vals = [f(doc, vars) for f in fns]
        arr = vals[0]
        if any(_nullish(x) for x in vals):
            return None
        if type(arr) is not list:
            raise _err(f"First argument to $slice must be an array, but is of type: {type_name(arr)}", 28724)
        second = vals[1]
        if _kind(second) == -1:
            raise _err(f"Second argument to $slice must be a numeric value, but was of type: {type_name(second)}",
                       28725)
        if not _is_integral(second):
            raise _err(f"Second argument to $slice can't be represented as a 32-bit integer: {fmt(second)}", 28726)
        n = len(arr)
        if len(vals) == 2:
            k = _as_int(second)
            if k >= 0:
                return arr[:k]
            return arr[max(0, n + k):]
        third = vals[2]
        if _kind(third) == -1:
            raise _err(f"Third argument to $slice must be numeric, but was of type: {type_name(third)}", 28727)
        if not _is_integral(third):
            raise _err(f"Third argument to $slice can't be represented as a 32-bit integer: {fmt(third)}", 28728)
        pos = _as_int(second)
        cnt = _as_int(third)
        if cnt <= 0:
            raise _err(f"Third argument to $slice must be positive: {fmt(third)}", 28729)
        if pos < 0:
            pos = max(0, n + pos)
        return arr[pos:pos + cnt]
    return _fold(slice_, fns)


def _c_in(spec, ctx, op):
    a, b = _args(op, spec, ctx, 2)
    if _is_const(b) and type(b.value) is list:
        arr = b.value
        simple = all(type(x) in (str, int, float) and x == x for x in arr)
        raw = frozenset(arr) if simple else None  # Python's 1 == 1.0 matches BSON numeric equality

        def in_const(doc, vars):
            x = a(doc, vars)
            if raw is not None:
                tx = type(x)
                if tx is int or tx is str or (tx is float and x == x):
                    return x in raw
            for y in arr:
                if compare(x, y) == 0:
                    return True
            return False
        return _fold(in_const, [a])

    def in_(doc, vars):
        x = a(doc, vars)
        arr = b(doc, vars)
        if type(arr) is not list:
            raise _err(f"$in requires an array as a second argument, found: {type_name(arr)}", 40081)
        for y in arr:
            if compare(x, y) == 0:
                return True
        return False
    return _fold(in_, [a, b])


def _c_concat_arrays(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def f(doc, vars):
        out = []
        for fn in fns:
            v = fn(doc, vars)
            if _nullish(v):
                return None
            if type(v) is not list:
                raise _err(f"$concatArrays only supports arrays, not {type_name(v)}", 28664)
            out.extend(v)
        return out
    return _fold(f, fns)


def _c_index_of_array(spec, ctx, op):
    fns = _args(op, spec, ctx, 2, 4)

    def f(doc, vars):
        arr = fns[0](doc, vars)
        if _nullish(arr):
            return None  # the other arguments are not evaluated
        vals = [arr] + [fn(doc, vars) for fn in fns[1:]]
        if type(arr) is not list:
            raise _err(f"$indexOfArray requires an array as a first argument, found: {type_name(arr)}", 40090)
        n = len(arr)
        start, end = 0, n
        for pos, name in ((2, "starting"), (3, "ending")):
            if len(vals) > pos:
                x = vals[pos]
                if not _is_integral(x):
                    raise _err(f"$indexOfArray requires an integral {name} index, found a value of type: "
                               f"{type_name(x)}, with value: {fmt(x)}", 40096)
                x = _as_int(x)
                if x < 0:
                    raise _err(f"$indexOfArray requires a nonnegative {name} index, found: {x}", 40097)
                if pos == 2:
                    start = x
                else:
                    end = min(x, n)
        search = vals[1]
        for i in range(start, end):
            if compare(arr[i], search) == 0:
                return i
        return -1
    return _fold(f, fns)


def _c_is_array(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)
    return _fold(lambda d, v: type(a(d, v)) is list, [a])


def _c_any_all(any_):
    def comp(spec, ctx, op):
        (a,) = _args(op, spec, ctx, 1)

        def f(doc, vars):
            arr = a(doc, vars)
            if type(arr) is not list:
                raise _err(f"{op}'s argument must be an array, but is {type_name(arr)}", 5159200)
            if any_:
                for e in arr:
                    if truthy(e):
                        return True
                return False
            for e in arr:
                if not truthy(e):
                    return False
            return True
        return _fold(f, [a])
    return comp


def _c_reverse_array(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        arr = a(doc, vars)
        if type(arr) is list:
            return arr[::-1]
        if _nullish(arr):
            return None
        raise _err(f"The argument to $reverseArray must be an array, but was of type: {type_name(arr)}", 34435)
    return _fold(f, [a])


def _c_range(spec, ctx, op):
    fns = _args(op, spec, ctx, 2, 3)

    def f(doc, vars):
        vals = [fn(doc, vars) for fn in fns]
        names = ("starting value", "ending value", "step value")
        ints = []
        for v, nm in zip(vals, names):
            if _kind(v) == -1:
                raise _err(f"$range requires a numeric {nm}, found value of type: {type_name(v)}", 34443)
            if not _is_integral(v) or not (_INT32_MIN <= _as_int(v) <= _INT32_MAX):
                raise _err(f"$range requires a {nm} that can be represented as a 32-bit integer, found value: "
                           f"{fmt(v)}", 34444)
            ints.append(_as_int(v))
        step = ints[2] if len(ints) > 2 else 1
        if step == 0:
            raise _err("$range requires a non-zero step value", 34449)
        return list(range(ints[0], ints[1], step))
    return _fold(f, fns)


def _sort_by_spec_cmp(spec):
    """A cmp(a, b) for $sortArray's sortBy (1 / -1 or {field: ±1})."""
    if isinstance(spec, dict):
        from .paths import sort_values
        fields = [(split_path(k), d) for k, d in spec.items()]

        def key_of(x, parts, d):
            if not isinstance(x, dict):
                return x
            vals = sort_values(x, parts)
            if not vals:
                return MISSING
            vals = [None if v is MISSING else v for v in vals]
            best = vals[0]
            for v in vals[1:]:
                c = compare(v, best)
                if (d > 0 and c < 0) or (d < 0 and c > 0):
                    best = v
            return best

        def cmp(a, b):
            for parts, d in fields:
                c = compare(key_of(a, parts, d), key_of(b, parts, d))
                if c:
                    return c if d > 0 else -c
            return 0
        return cmp
    d = spec

    def cmp_value(a, b):
        c = compare(a, b)
        return c if d > 0 else -c
    return cmp_value


def _c_sort_array(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$sortArray requires an object as an argument", op)
    for k in spec:
        if k not in ("input", "sortBy"):
            raise _cerr(f"$sortArray found an unknown argument: {k}", op)
    if "input" not in spec:
        raise _cerr("$sortArray requires 'input' to be specified", op)
    if "sortBy" not in spec:
        raise _cerr("$sortArray requires 'sortBy' to be specified", op)
    sb = spec["sortBy"]
    if isinstance(sb, dict):
        if not sb:
            raise _cerr("$sortArray sortBy must not be empty", op)
        for k, d in sb.items():
            if d not in (1, -1) or isinstance(d, bool):
                raise _cerr("$sortArray sort specification values must be 1 or -1", op)
    elif sb not in (1, -1) or isinstance(sb, bool):
        raise _cerr("$sortArray sort specification must be 1 or -1, or an object", op)
    inp = compile_expression(spec["input"], ctx)
    key = functools.cmp_to_key(_sort_by_spec_cmp(sb))

    def f(doc, vars):
        arr = inp(doc, vars)
        if _nullish(arr):
            return None
        if type(arr) is not list:
            raise _err(f"The input argument to $sortArray must be an array, but was of type: {type_name(arr)}",
                       2942504)
        return sorted(arr, key=key)
    return _fold(f, [inp])


def _c_zip(spec, ctx, op):
    if not isinstance(spec, dict):
        raise _cerr("$zip only supports an object as its argument", op)
    for k in spec:
        if k not in ("inputs", "useLongestLength", "defaults"):
            raise _cerr(f"$zip found an unknown argument: {k}", op)
    if "inputs" not in spec:
        raise _cerr("Missing 'inputs' parameter to $zip", op)
    if not isinstance(spec["inputs"], list):
        raise _cerr("inputs must be an array of expressions", op)
    longest = spec.get("useLongestLength", False)
    if not isinstance(longest, bool):
        raise _cerr("useLongestLength must be a bool", op)
    inputs = [compile_expression(x, ctx) for x in spec["inputs"]]
    defaults = None
    if "defaults" in spec:
        if not longest:
            raise _cerr("cannot specify defaults unless useLongestLength is true", op)
        if not isinstance(spec["defaults"], list):
            raise _cerr("defaults must be an array of expressions", op)
        defaults = [compile_expression(x, ctx) for x in spec["defaults"]]
        if len(defaults) != len(inputs):
            raise _cerr("defaults and inputs must have the same length", op)

    def f(doc, vars):
        arrays = []
        for fn in inputs:
            v = fn(doc, vars)
            if _nullish(v):
                return None
            if type(v) is not list:
                raise _err(f"$zip found a non-array expression in input: {fmt(v)}", 34468)
            arrays.append(v)
        if not arrays:
            return []
        dv = [None if (x := fn(doc, vars)) is MISSING else x for fn in defaults] if defaults else \
            [None] * len(arrays)
        n = max(len(a) for a in arrays) if longest else min(len(a) for a in arrays)
        return [[a[i] if i < len(a) else dv[j] for j, a in enumerate(arrays)] for i in range(n)]
    return f


def _c_array_acc(op_name):
    reducer = ARRAY_ACCUMULATORS[op_name]

    def comp(spec, ctx, op):
        items = spec if isinstance(spec, list) else [spec]
        fns = [compile_expression(x, ctx) for x in items]
        if len(fns) == 1:
            (a,) = fns

            def acc1(doc, vars):
                v = a(doc, vars)
                if type(v) is list:
                    return reducer(v)
                return reducer((v,))
            return _fold(acc1, fns)

        if len(fns) == 2 and op_name in ("$max", "$min"):
            a, b = fns
            pick = max if op_name == "$max" else min

            def minmax2(doc, vars):
                x = a(doc, vars)
                y = b(doc, vars)
                tx = type(x)
                ty = type(y)
                if (tx is float or tx is int) and (ty is float or ty is int) and x == x and y == y:
                    return pick(x, y)
                return reducer((x, y))
            return _fold(minmax2, fns)

        def accn(doc, vars):
            return reducer([f(doc, vars) for f in fns])
        return _fold(accn, fns)
    return comp


# --- objects and sets (extras) -----------------------------------------------------------------

def _c_merge_objects(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def f(doc, vars):
        out = {}
        for fn in fns:
            v = fn(doc, vars)
            if _nullish(v):
                continue
            if not isinstance(v, dict):
                raise _err(f"$mergeObjects requires object inputs, but input {fmt(v)} is of type {type_name(v)}",
                           40400)
            out.update(v)
        return out
    return _fold(f, fns)


def _c_object_to_array(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        v = a(doc, vars)
        if _nullish(v):
            return None
        if not isinstance(v, dict):
            raise _err(f"$objectToArray requires a document input, found: {type_name(v)}", 40390)
        return [{"k": k, "v": x} for k, x in v.items()]
    return _fold(f, [a])


def _c_array_to_object(spec, ctx, op):
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        v = a(doc, vars)
        if _nullish(v):
            return None
        if type(v) is not list:
            raise _err(f"$arrayToObject requires an array input, found: {type_name(v)}", 40386)
        out = {}
        for e in v:
            if isinstance(e, dict):
                if set(e) != {"k", "v"}:
                    raise _err("$arrayToObject requires an object with keys 'k' and 'v'.", 40392)
                k, x = e["k"], e["v"]
            elif type(e) is list and len(e) == 2:
                k, x = e
            else:
                raise _err("$arrayToObject requires an array of size 2 arrays or objects with keys 'k' and 'v'",
                           40398)
            if not isinstance(k, str):
                raise _err(f"$arrayToObject requires a string key, found: {type_name(k)}", 40395)
            out[k] = x
        return out
    return _fold(f, [a])


def _set_args(op, vals):
    for v in vals:
        if type(v) is not list:
            raise _err(f"All operands of {op} must be arrays. One argument is of type: {type_name(v)}", 17044)


def _uniq(vals):
    seen = set()
    out = []
    for v in vals:
        k = group_key(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def _c_set(which):
    def comp(spec, ctx, op):
        fns = _args(op, spec, ctx, 0 if which in ("union", "intersection") else 2,
                    None if which in ("union", "intersection") else 2)

        def f(doc, vars):
            vals = [fn(doc, vars) for fn in fns]
            if which in ("union", "intersection", "difference") and any(_nullish(v) for v in vals):
                return None
            _set_args(op, vals)
            if which == "union":
                return _uniq([x for v in vals for x in v])
            if which == "intersection":
                if not vals:
                    return []
                keys = None
                for v in vals:
                    ks = {group_key(x) for x in v}
                    keys = ks if keys is None else keys & ks
                return [x for x in _uniq(vals[0]) if group_key(x) in keys]
            a, b = vals
            kb = {group_key(x) for x in b}
            if which == "difference":
                return [x for x in _uniq(a) if group_key(x) not in kb]
            ka = {group_key(x) for x in a}
            if which == "equals":
                return ka == kb
            return ka <= kb  # isSubset
        return _fold(f, fns)
    return comp


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


# --- operator table ---------------------------------------------------------------------------

EXPRESSION_OPERATORS = {
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
}
