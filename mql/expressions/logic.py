"""Boolean ($and, $or, $not), conditional ($cond, $ifNull, $switch) and variable ($let, $literal) operators."""

from __future__ import annotations

from ..bson_order import MISSING, truthy
from .base import _args, _cerr, _const, _err, _fold, _object_argument, check_user_var_name, compile_expression


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
        _object_argument(spec, op, ("if", "then", "else"), ("if", "then", "else"))
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
    _object_argument(spec, op, ("vars", "in"), ("vars", "in"))
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
