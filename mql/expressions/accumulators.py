"""Accumulators ($sum, $avg, $min, $max, $stdDevPop, $stdDevSamp): used by ``$group`` and, over
arrays, by the array operators of the same names."""

from __future__ import annotations

import math

from ..bson_order import DEC_CTX, MISSING, compare
from .base import _Decimal
from .numbers import _dec, _decimal_sum, _int_result, _kind, _to_float


# --- accumulators (also used by $group) ------------------------------------------------------

def _numbers_of(values) -> tuple[int, int, int, list, list | None]:
    """(widest kind, how many, the integers' total, the floats, the decimals or None) of the numbers
    among ``values`` (anything else is skipped, as MongoDB's accumulators do)."""
    kind = 0
    n = 0
    ints = 0
    floats = []
    decs = None
    for v in values:
        if type(v) is float:  # the common case first
            floats.append(v)
            n += 1
            if kind < 2:
                kind = 2
            continue
        k = _kind(v)
        if k == -1:
            continue
        n += 1
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
    return kind, n, ints, floats, decs


def acc_sum(values):
    kind, _, ints, floats, decs = _numbers_of(values)
    if kind == 3:
        total = _decimal_sum(ints, decs, floats)
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
    _, n, ints, floats, decs = _numbers_of(values)
    if n == 0:
        return None
    if decs is not None:
        total = _decimal_sum(ints, decs, floats)
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
