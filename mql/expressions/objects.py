"""Object and set operators ($mergeObjects, $objectToArray, $arrayToObject, $setUnion, ...)."""

from __future__ import annotations

from ..bson_order import fmt, group_key, type_name
from .base import _args, _err, _fold
from .numbers import _nullish


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
