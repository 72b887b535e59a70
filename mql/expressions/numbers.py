"""Numbers with MongoDB's semantics: int32/int64/double/decimal kinds, overflow promotion, rounding,
and the numeric kernels the arithmetic, accumulator, string and type operators share."""

from __future__ import annotations

import datetime
import decimal
import math

from bson import Decimal128, Int64

from ..bson_order import DEC_CTX, MISSING, fmt, is_number, type_name
from .base import _Decimal, _err


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


def _decimal_sum(ints: int, decs, floats) -> decimal.Decimal:
    """ints + decimals + floats added in decimal arithmetic (DEC_CTX), as MongoDB sums mixed kinds."""
    total = DEC_CTX.create_decimal(ints)
    for x in decs:
        total = DEC_CTX.add(total, _to_dec(x))
    for x in floats:
        total = DEC_CTX.add(total, _to_dec(x))
    return total


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
        total = _decimal_sum(ints, decs, floats)
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


def _positive_log(op: str, code: int, dec_log, float_log):
    """$ln / $log10: the logarithm of a positive number (null for null, NaN for NaN)."""
    def log(v):
        if _num_arg(op, v, 28765) is None:
            return None
        if _kind(v) == 3:
            d = _to_dec(v)
            if not d > 0:
                raise _err(f"{op}'s argument must be a positive number, but is {fmt(v)}", code)
            return _dec(dec_log(d))
        f = _to_float(v)
        if f != f:
            return f
        if f <= 0:
            raise _err(f"{op}'s argument must be a positive number, but is {fmt(v)}", code)
        return float_log(f)
    return log


_ln = _positive_log("$ln", 28766, DEC_CTX.ln, math.log)
_log10 = _positive_log("$log10", 28761, DEC_CTX.log10, math.log10)


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
