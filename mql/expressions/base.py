"""The expression compiler's core: the evaluation context, compile-time folding of constants and
the recursive compiler (``compile_expression``) that looks operators up in ``EXPRESSION_OPERATORS``
(filled by the package from the operator families)."""

from __future__ import annotations

import datetime
import decimal
import re

from ..bson_order import MISSING, fmt
from ..errors import FilterCompileError, FilterRuntimeError, UnsupportedOperator
from ..paths import expr_getter, split_path

EXPRESSION_OPERATORS: dict = {}  # operator name -> compiler; filled by the package (__init__)

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


def _object_argument(spec, op: str, allowed: tuple, required: tuple) -> None:
    """An operator's argument in object form (``$map``, ``$filter``, ``$let``, ...): only ``allowed``
    keys and every ``required`` one, refused with MongoDB's messages in MongoDB's order."""
    if not isinstance(spec, dict):
        raise _cerr(f"{op} only supports an object as its argument", op)
    for k in spec:
        if k not in allowed:
            raise _cerr(f"Unrecognized parameter to {op}: {k}", op)
    for k in required:
        if k not in spec:
            raise _cerr(f"Missing '{k}' parameter to {op}", op)


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
