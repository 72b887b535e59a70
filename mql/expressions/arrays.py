"""Array operators ($filter, $map, $reduce, $arrayElemAt, $slice, $in, $zip, $sortArray, ...)."""

from __future__ import annotations

import functools

from ..bson_order import MISSING, compare, fmt, truthy, type_name
from ..paths import split_path
from .accumulators import ARRAY_ACCUMULATORS
from .base import _args, _cerr, _err, _fold, _is_const, _object_argument, check_user_var_name, compile_expression
from .numbers import _INT32_MAX, _INT32_MIN, _as_int, _is_integral, _kind, _nullish


# --- arrays -----------------------------------------------------------------------------------

def _null_or_raise(value, error):
    """None for a null or missing input, else raises ``error(<the value's type name>)``."""
    if _nullish(value):
        return None
    raise error(type_name(value))


def _c_map(spec, ctx, op):
    _object_argument(spec, op, ("input", "as", "in"), ("input", "in"))
    name = spec.get("as", "this")
    check_user_var_name(name, op)
    inp = compile_expression(spec["input"], ctx)
    body = compile_expression(spec["in"], ctx.with_vars([name]))

    def map_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            return _null_or_raise(arr, lambda t: _err(f"input to $map must be an array not {t}", 16883))
        v2 = dict(vars)
        out = []
        for e in arr:
            v2[name] = e
            r = body(doc, v2)
            out.append(None if r is MISSING else r)
        return out
    return map_


def _c_filter(spec, ctx, op):
    _object_argument(spec, op, ("input", "as", "cond", "limit"), ("input", "cond"))
    name = spec.get("as", "this")
    check_user_var_name(name, op)
    inp = compile_expression(spec["input"], ctx)
    cond = compile_expression(spec["cond"], ctx.with_vars([name]))
    limit = compile_expression(spec["limit"], ctx) if "limit" in spec else None

    def filter_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            return _null_or_raise(arr, lambda t: _err(f"input to $filter must be an array not {t}", 28651))
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
    _object_argument(spec, op, ("input", "initialValue", "in"), ("input", "initialValue", "in"))
    inp = compile_expression(spec["input"], ctx)
    init = compile_expression(spec["initialValue"], ctx)
    body = compile_expression(spec["in"], ctx.with_vars(["this", "value"]))

    def reduce_(doc, vars):
        arr = inp(doc, vars)
        if type(arr) is not list:
            return _null_or_raise(arr, lambda t: _err(f"$reduce requires that 'input' be an array, found: {t}", 40080))
        acc = init(doc, vars)
        v2 = dict(vars)
        for e in arr:
            v2["this"] = e
            v2["value"] = acc
            acc = body(doc, v2)
        return acc
    return reduce_


def _on_array(op, spec, ctx, on_list, msg: str, code: int, null_ok: bool = True):
    """A one-argument array operator: ``on_list(array)``; null or missing gives null where
    ``null_ok``, anything else raises ``msg`` (``{t}``: the argument's type) with ``code``."""
    (a,) = _args(op, spec, ctx, 1)

    def f(doc, vars):
        arr = a(doc, vars)
        if type(arr) is list:
            return on_list(arr)
        if null_ok and _nullish(arr):
            return None
        raise _err(msg.format(t=type_name(arr)), code)
    return _fold(f, [a])


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
        return _on_array(op, spec, ctx, lambda arr: (arr[0] if first else arr[-1]) if arr else MISSING,
                         f"{op}'s argument must be an array, but is {{t}}", 28689)
    return comp


def _c_size(spec, ctx, op):
    return _on_array(op, spec, ctx, len, "The argument to $size must be an array. Type of the argument was: {t}", 17124,
                     null_ok=False)


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


def _arrays(fns, doc, vars, not_an_array) -> list[list] | None:
    """Each expression's array, in order; None as soon as one is null or missing (the rest are not
    evaluated); ``not_an_array(value)`` is raised for any other non-array."""
    arrays = []
    for fn in fns:
        v = fn(doc, vars)
        if _nullish(v):
            return None
        if type(v) is not list:
            raise not_an_array(v)
        arrays.append(v)
    return arrays


def _c_concat_arrays(spec, ctx, op):
    fns = _args(op, spec, ctx, 0, None)

    def not_an_array(v):
        return _err(f"$concatArrays only supports arrays, not {type_name(v)}", 28664)

    def f(doc, vars):
        arrays = _arrays(fns, doc, vars, not_an_array)
        return None if arrays is None else [x for a in arrays for x in a]
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
        test = (lambda arr: any(truthy(e) for e in arr)) if any_ else (lambda arr: all(truthy(e) for e in arr))
        return _on_array(op, spec, ctx, test, f"{op}'s argument must be an array, but is {{t}}", 5159200, null_ok=False)
    return comp


def _c_reverse_array(spec, ctx, op):
    return _on_array(op, spec, ctx, lambda arr: arr[::-1],
                     "The argument to $reverseArray must be an array, but was of type: {t}", 34435)


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
        from ..paths import sort_values
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

    def not_an_array(v):
        return _err(f"$zip found a non-array expression in input: {fmt(v)}", 34468)

    def f(doc, vars):
        arrays = _arrays(inputs, doc, vars, not_an_array)
        if arrays is None:
            return None
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
