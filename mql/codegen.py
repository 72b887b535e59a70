"""Expression compiler, second tier: generate one Python function per expression tree.

The closure compiler (``expressions.compile_expression``) is the reference: it validates the
expression (all compile-time errors come from it) and evaluates every operator.  This module
turns the most common operators (field and variable paths, comparisons, boolean logic,
conditionals, arithmetic, ``$filter`` / ``$map`` / ``$reduce``, ``$in``, ``$size``, ``$type``,
array accumulators, object and array literals, ``$let``) into straight-line Python source with
inline fast paths, so that evaluating a filter costs one Python call per expression instead of
one per node.  Every other operator is called through its closure (with the loop variables in
scope passed in ``vars``), and the slow paths (unusual types, errors) call the same helpers as
the closures, so both tiers give identical results (tests/filters/test_engine_codegen.py).
"""

from __future__ import annotations

import itertools
import math

from . import expressions as X
from .bson_order import MISSING, compare, truthy, type_name
from .paths import _expr_array, expr_getter, split_path

__all__ = ["compile_fast"]

_counter = itertools.count()


class _Unsupported(Exception):
    pass


def _is_simple_literal(v) -> bool:
    t = type(v)
    if t is bool or v is None or t is str:
        return True
    if t is int:
        return True
    if t is float:
        return v == v and not math.isinf(v)
    return False


def _truthy_src(x: str) -> str:
    return f"({x} is True or ({x} is not False and _truthy({x})))"


class _Gen:
    def __init__(self):
        self.lines: list[str] = []
        self.prologue: list[str] = []   # document paths, computed once at entry (pure, never raise)
        self.doc_paths: dict = {}
        self.bools: set[str] = set()    # temps known to hold a bool
        self.ns: dict = {
            "MISSING": MISSING, "_truthy": truthy, "_compare": compare, "_type_name": type_name,
            "_expr_array": _expr_array, "_X": X,
        }
        self.n = 0
        self.depth = 1

    # --- helpers ---
    def tmp(self, p="t") -> str:
        self.n += 1
        return f"{p}{self.n}"

    def const(self, value) -> str:
        if _is_simple_literal(value):
            return repr(value)
        name = f"k{self.n}_{len(self.ns)}"
        self.ns[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def indent(self):
        self.depth += 1

    def dedent(self):
        self.depth -= 1

    # --- entry ---
    def gen(self, spec, ctx, scope: dict) -> str:
        """Emit code computing ``spec``; return the name of a local holding the value."""
        # constants (as the closure compiler folds them)
        fn = X.compile_expression(spec, ctx)
        if X._is_const(fn):
            t = self.tmp()
            self.emit(f"{t} = {self.const(fn.value)}")
            return t
        t = type(spec)
        if t is str:
            if spec.startswith("$$"):
                return self.variable(spec, ctx, scope)
            return self.path("doc", split_path(spec[1:]))
        if t is list:
            items = [self.gen(x, ctx, scope) for x in spec]
            out = self.tmp()
            self.emit(f"{out} = [{', '.join(f'(None if {i} is MISSING else {i})' for i in items)}]")
            return out
        if isinstance(spec, dict):
            keys = list(spec)
            if keys and isinstance(keys[0], str) and keys[0].startswith("$"):
                op = keys[0]
                meth = getattr(self, "op_" + op[1:], None)
                if meth is not None:
                    try:
                        mark = (len(self.lines), self.n, self.depth)
                        return meth(spec[op], ctx, scope, op)
                    except _Unsupported:
                        del self.lines[mark[0]:]
                        self.depth = mark[2]
                return self.fallback(spec, ctx, scope)
            out = self.tmp()
            self.emit(f"{out} = {{}}")
            for k, v in spec.items():
                val = self.gen(v, ctx, scope)
                self.emit(f"if {val} is not MISSING:")
                self.indent()
                self.emit(f"{out}[{k!r}] = {val}")
                self.dedent()
            return out
        out = self.tmp()
        self.emit(f"{out} = {self.const(spec)}")
        return out

    def fallback(self, spec, ctx, scope) -> str:
        fn = X.compile_expression(spec, ctx)
        name = self.const(fn)
        out = self.tmp()
        if scope:
            extra = ", ".join(f"{k!r}: {v}" for k, v in scope.items())
            self.emit(f"{out} = {name}(doc, {{**vars, {extra}}})")
        else:
            self.emit(f"{out} = {name}(doc, vars)")
        return out

    def truth(self, x: str) -> str:
        return x if x in self.bools else _truthy_src(x)

    def path(self, base: str, parts) -> str:
        if base == "doc":
            key = tuple(parts)
            hit = self.doc_paths.get(key)
            if hit is not None:
                return hit
            saved, saved_depth = self.lines, self.depth
            self.lines, self.depth = self.prologue, 1
            try:
                out = self._path(base, parts)
            finally:
                self.lines, self.depth = saved, saved_depth
            self.doc_paths[key] = out
            return out
        return self._path(base, parts)

    def _path(self, base: str, parts) -> str:
        out = self.tmp()
        g = self.const(expr_getter(tuple(parts)))
        if len(parts) == 1:
            self.emit(f"{out} = {base}.get({parts[0]!r}, MISSING) if type({base}) is dict else {g}({base})")
        elif len(parts) == 2:
            self.emit(f"if type({base}) is dict and type({out} := {base}.get({parts[0]!r}, MISSING)) is dict:")
            self.indent()
            self.emit(f"{out} = {out}.get({parts[1]!r}, MISSING)")
            self.dedent()
            self.emit("else:")
            self.indent()
            self.emit(f"{out} = {g}({base})")
            self.dedent()
        else:
            self.emit(f"{out} = {g}({base})")
        return out

    def variable(self, ref: str, ctx, scope) -> str:
        name, _, rest = ref[2:].partition(".")
        parts = split_path(rest) if rest else ()
        if name == "CURRENT":
            base = "doc"
        elif name == "ROOT":
            base = self.tmp("r")
            self.emit(f"{base} = vars['ROOT']")
        elif name in scope:
            base = scope[name]
        elif name == "REMOVE" and not parts:
            out = self.tmp()
            self.emit(f"{out} = MISSING")
            return out
        elif name in ctx.variables:
            base = self.tmp("r")
            self.emit(f"{base} = vars[{name!r}]")
        else:
            return self.fallback(ref, ctx, scope)
        if not parts:
            return base
        return self.path(base, parts)

    # --- operators ---
    def _two(self, arg, ctx, op):
        items = arg if isinstance(arg, list) else [arg]
        if len(items) != 2:
            raise _Unsupported
        return items

    def _one(self, arg):
        items = arg if isinstance(arg, list) else [arg]
        if len(items) != 1:
            raise _Unsupported
        return items[0]

    def _cmp(self, arg, ctx, scope, op, pyop, sign):
        a, b = self._two(arg, ctx, op)
        fa, fb = X.compile_expression(a, ctx), X.compile_expression(b, ctx)
        out = self.tmp()
        if X._is_const(fb) and X._plain_number(fb.value) and type(fb.value) in (int, float):
            x = self.gen(a, ctx, scope)
            c = self.const(fb.value)
            self.emit(f"{out} = {x} {pyop} {c} if (type({x}) is float or type({x}) is int) and {x} == {x} "
                      f"else _compare({x}, {c}) {sign}")
            return out
        if X._is_const(fb) and fb.value is None:
            x = self.gen(a, ctx, scope)
            above, equal, below = (eval(f"{c} {sign}") for c in (1, 0, -1))  # noqa: S307 - literal ints
            self.emit(f"if {x} is MISSING:")
            self.indent()
            self.emit(f"{out} = {below}")
            self.dedent()
            self.emit(f"elif {x} is None:")
            self.indent()
            self.emit(f"{out} = {equal}")
            self.dedent()
            self.emit(f"elif type({x}) is float or type({x}) is int or type({x}) is str or type({x}) is dict "
                      f"or type({x}) is list:")
            self.indent()
            self.emit(f"{out} = {above}")
            self.dedent()
            self.emit("else:")
            self.indent()
            self.emit(f"{out} = _compare({x}, None) {sign}")
            self.dedent()
            return out
        x = self.gen(a, ctx, scope)
        y = self.gen(b, ctx, scope)
        self.emit(f"if (type({x}) is float or type({x}) is int) and (type({y}) is float or type({y}) is int) "
                  f"and {x} == {x} and {y} == {y}:")
        self.indent()
        self.emit(f"{out} = {x} {pyop} {y}")
        self.dedent()
        self.emit(f"elif type({x}) is str and type({y}) is str:")
        self.indent()
        self.emit(f"{out} = {x} {pyop} {y}")
        self.dedent()
        self.emit("else:")
        self.indent()
        self.emit(f"{out} = _compare({x}, {y}) {sign}")
        self.dedent()
        return out

    def _cmpb(self, *a):
        out = self._cmp(*a)
        self.bools.add(out)
        return out

    def op_gt(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, ">", "> 0")

    def op_gte(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, ">=", ">= 0")

    def op_lt(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, "<", "< 0")

    def op_lte(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, "<=", "<= 0")

    def op_eq(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, "==", "== 0")

    def op_ne(self, arg, ctx, scope, op):
        return self._cmpb(arg, ctx, scope, op, "!=", "!= 0")

    def _short_circuit(self, arg, ctx, scope, stop_when: bool):
        """``$and`` (stops at the first false item) and ``$or`` (at the first true one): nested
        ifs, so the items after the deciding one are never evaluated."""
        items = arg if isinstance(arg, list) else [arg]
        out = self.tmp()
        self.emit(f"{out} = {not stop_when}")
        opened = 0
        for it in items:
            x = self.gen(it, ctx, scope)
            self.emit(f"if {'' if stop_when else 'not '}{self.truth(x)}:")
            self.indent()
            self.emit(f"{out} = {stop_when}")
            self.dedent()
            self.emit("else:")
            self.indent()
            opened += 1
        self.emit("pass")
        self.depth -= opened
        self.bools.add(out)
        return out

    def op_and(self, arg, ctx, scope, op):
        return self._short_circuit(arg, ctx, scope, stop_when=False)

    def op_or(self, arg, ctx, scope, op):
        return self._short_circuit(arg, ctx, scope, stop_when=True)

    def op_not(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = not {self.truth(x)}")
        self.bools.add(out)
        return out

    def op_cond(self, arg, ctx, scope, op):
        if isinstance(arg, dict):
            c, t, e = arg["if"], arg["then"], arg["else"]
        else:
            if len(arg) != 3:
                raise _Unsupported
            c, t, e = arg
        out = self.tmp()
        x = self.gen(c, ctx, scope)
        self.emit(f"if {self.truth(x)}:")
        self.indent()
        y = self.gen(t, ctx, scope)
        self.emit(f"{out} = {y}")
        self.dedent()
        self.emit("else:")
        self.indent()
        z = self.gen(e, ctx, scope)
        self.emit(f"{out} = {z}")
        self.dedent()
        return out

    def op_ifNull(self, arg, ctx, scope, op):
        items = arg if isinstance(arg, list) else [arg]
        if len(items) < 2:
            raise _Unsupported
        out = self.tmp()
        opened = 0
        for it in items[:-1]:
            x = self.gen(it, ctx, scope)
            self.emit(f"if {x} is not None and {x} is not MISSING:")
            self.indent()
            self.emit(f"{out} = {x}")
            self.dedent()
            self.emit("else:")
            self.indent()
            opened += 1
        y = self.gen(items[-1], ctx, scope)
        self.emit(f"{out} = {y}")
        self.depth -= opened
        return out

    def op_subtract(self, arg, ctx, scope, op):
        a, b = self._two(arg, ctx, op)
        x = self.gen(a, ctx, scope)
        y = self.gen(b, ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = {x} - {y} if type({x}) is float and type({y}) is float else _X._subtract({x}, {y})")
        return out

    def _null_first(self, arg, ctx, scope, op, symbol: str, general: str):
        """``$add``/``$multiply`` of two: null when the first is null or missing (the second is
        then not evaluated), the float operation inline, ``_X.<general>`` for every other type."""
        a, b = self._two(arg, ctx, op)
        out = self.tmp()
        x = self.gen(a, ctx, scope)
        self.emit(f"if {x} is None or {x} is MISSING:")
        self.indent()
        self.emit(f"{out} = None")
        self.dedent()
        self.emit("else:")
        self.indent()
        y = self.gen(b, ctx, scope)
        self.emit(f"{out} = {x} {symbol} {y} if type({x}) is float and type({y}) is float else _X.{general}(({x}, {y}))")
        self.dedent()
        return out

    def op_add(self, arg, ctx, scope, op):
        return self._null_first(arg, ctx, scope, op, "+", "_add_values")

    def op_multiply(self, arg, ctx, scope, op):
        return self._null_first(arg, ctx, scope, op, "*", "_mul_values")

    def op_divide(self, arg, ctx, scope, op):
        a, b = self._two(arg, ctx, op)
        x = self.gen(a, ctx, scope)
        y = self.gen(b, ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = {x} / {y} if type({x}) is float and type({y}) is float and {y} != 0.0 "
                  f"else _X._divide({x}, {y})")
        return out

    def op_abs(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = abs({x}) if type({x}) is float else _X._abs({x})")
        return out

    def op_size(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self.tmp()
        f = self.const(X.compile_expression({"$size": "$$a"}, X.Ctx({"a"})))
        self.emit(f"{out} = len({x}) if type({x}) is list else {f}(None, {{'a': {x}}})")
        return out

    def op_type(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = _type_name({x})")
        return out

    def op_in(self, arg, ctx, scope, op):
        a, b = self._two(arg, ctx, op)
        fb = X.compile_expression(b, ctx)
        if not (X._is_const(fb) and type(fb.value) is list):
            raise _Unsupported
        arr = fb.value
        if not all(type(v) in (str, int, float) and v == v for v in arr):
            raise _Unsupported
        x = self.gen(a, ctx, scope)
        raw = self.const(frozenset(arr))
        lst = self.const(list(arr))
        out = self.tmp()
        self.emit(f"if type({x}) is int or type({x}) is str or (type({x}) is float and {x} == {x}):")
        self.indent()
        self.emit(f"{out} = {x} in {raw}")
        self.dedent()
        self.emit("else:")
        self.indent()
        self.emit(f"{out} = any(_compare({x}, _y) == 0 for _y in {lst})")
        self.dedent()
        self.bools.add(out)
        return out

    def _acc(self, arg, ctx, scope, op):
        reducer = self.const(X.ARRAY_ACCUMULATORS[op])
        items = arg if isinstance(arg, list) else [arg]
        out = self.tmp()
        if len(items) == 1:
            x = self.gen(items[0], ctx, scope)
            self.emit(f"{out} = {reducer}({x} if type({x}) is list else ({x},))")
            return out
        xs = [self.gen(it, ctx, scope) for it in items]
        if len(xs) == 2 and op in ("$max", "$min"):
            x, y = xs
            pick = "max" if op == "$max" else "min"
            self.emit(f"if (type({x}) is float or type({x}) is int) and (type({y}) is float or type({y}) is int) "
                      f"and {x} == {x} and {y} == {y}:")
            self.indent()
            self.emit(f"{out} = {pick}({x}, {y})")
            self.dedent()
            self.emit("else:")
            self.indent()
            self.emit(f"{out} = {reducer}(({x}, {y}))")
            self.dedent()
            return out
        self.emit(f"{out} = {reducer}(({', '.join(xs)},))")
        return out

    def op_max(self, arg, ctx, scope, op):
        return self._acc(arg, ctx, scope, op)

    def op_min(self, arg, ctx, scope, op):
        return self._acc(arg, ctx, scope, op)

    def op_sum(self, arg, ctx, scope, op):
        return self._acc(arg, ctx, scope, op)

    def op_avg(self, arg, ctx, scope, op):
        return self._acc(arg, ctx, scope, op)

    def _with_slow(self, fast_cond: str, fast_expr: str, x: str, spec_with_a) -> str:
        """out = fast_expr if fast_cond else <the closure of spec_with_a applied to $$a = x>."""
        slow = self.const(X.compile_expression(spec_with_a, X.Ctx({"a"})))
        out = self.tmp()
        self.emit(f"{out} = {fast_expr} if {fast_cond} else {slow}(None, {{'a': {x}}})")
        return out

    def op_anyElementTrue(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self._with_slow(f"type({x}) is list", f"any({_truthy_src('_e')} for _e in {x})", x, {op: ["$$a"]})
        self.bools.add(out)
        return out

    def op_allElementsTrue(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self._with_slow(f"type({x}) is list", f"all({_truthy_src('_e')} for _e in {x})", x, {op: ["$$a"]})
        self.bools.add(out)
        return out

    def op_isArray(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        out = self.tmp()
        self.emit(f"{out} = type({x}) is list")
        self.bools.add(out)
        return out

    def op_first(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        return self._with_slow(f"type({x}) is list and {x}", f"{x}[0]", x, {op: "$$a"})

    def op_last(self, arg, ctx, scope, op):
        x = self.gen(self._one(arg), ctx, scope)
        return self._with_slow(f"type({x}) is list and {x}", f"{x}[-1]", x, {op: "$$a"})

    def op_arrayElemAt(self, arg, ctx, scope, op):
        a, b = self._two(arg, ctx, op)
        x = self.gen(a, ctx, scope)
        i = self.gen(b, ctx, scope)
        slow = self.const(X.compile_expression({op: ["$$a", "$$b"]}, X.Ctx({"a", "b"})))
        out = self.tmp()
        self.emit(f"if type({x}) is list and type({i}) is int and -len({x}) <= {i} < len({x}):")
        self.indent()
        self.emit(f"{out} = {x}[{i}]")
        self.dedent()
        self.emit("else:")
        self.indent()
        self.emit(f"{out} = {slow}(None, {{'a': {x}, 'b': {i}}})")
        self.dedent()
        return out

    def op_literal(self, arg, ctx, scope, op):
        out = self.tmp()
        self.emit(f"{out} = {self.const(arg)}")
        return out

    def _loop_input(self, spec_input, ctx, scope, op, what):
        arr = self.gen(spec_input, ctx, scope)
        err = self.const(X.compile_expression({op: what}, X.Ctx({"a"})))
        return arr, err

    def _over_list(self, arg, ctx, scope, op, what, item):
        """``[]`` filled by ``item(out, loc, ctx, scope)`` for each element of ``arg["input"]`` (bound
        to ``$$<as>``); an input that is not a list raises the interpreter's error for ``what``."""
        name = arg.get("as", "this")
        arr, err = self._loop_input(arg["input"], ctx, scope, op, what)
        out = self.tmp()
        loc = self.tmp("v")
        self.emit(f"if type({arr}) is not list:")
        self.indent()
        self.emit(f"{out} = {err}(None, {{'a': {arr}}})")
        self.dedent()
        self.emit("else:")
        self.indent()
        self.emit(f"{out} = []")
        self.emit(f"for {loc} in {arr}:")
        self.indent()
        item(out, loc, ctx.with_vars([name]), {**scope, name: loc})
        self.dedent()
        self.dedent()
        return out

    def op_filter(self, arg, ctx, scope, op):
        if "limit" in arg:
            raise _Unsupported

        def keep_if(out, loc, ictx, iscope):
            c = self.gen(arg["cond"], ictx, iscope)
            self.emit(f"if {self.truth(c)}:")
            self.indent()
            self.emit(f"{out}.append({loc})")
            self.dedent()
        return self._over_list(arg, ctx, scope, op, {"input": "$$a", "cond": True}, keep_if)

    def op_map(self, arg, ctx, scope, op):
        def mapped(out, loc, ictx, iscope):
            r = self.gen(arg["in"], ictx, iscope)
            self.emit(f"{out}.append(None if {r} is MISSING else {r})")
        return self._over_list(arg, ctx, scope, op, {"input": "$$a", "in": 1}, mapped)

    def op_reduce(self, arg, ctx, scope, op):
        arr, err = self._loop_input(arg["input"], ctx, scope, op, {"input": "$$a", "initialValue": 0, "in": 1})
        out = self.tmp()
        this = self.tmp("v")
        self.emit(f"if type({arr}) is not list:")
        self.indent()
        self.emit(f"{out} = {err}(None, {{'a': {arr}}})")
        self.dedent()
        self.emit("else:")
        self.indent()
        init = self.gen(arg["initialValue"], ctx, scope)
        self.emit(f"{out} = {init}")
        self.emit(f"for {this} in {arr}:")
        self.indent()
        acc = self.tmp("v")
        self.emit(f"{acc} = {out}")
        r = self.gen(arg["in"], ctx.with_vars(["this", "value"]), {**scope, "this": this, "value": acc})
        self.emit(f"{out} = {r}")
        self.dedent()
        self.dedent()
        return out

    def op_let(self, arg, ctx, scope, op):
        defs = arg["vars"]
        if "CURRENT" in defs:
            raise _Unsupported
        new_scope = dict(scope)
        for name, e in defs.items():
            v = self.gen(e, ctx, scope)
            loc = self.tmp("v")
            self.emit(f"{loc} = {v}")
            new_scope[name] = loc
        return self.gen(arg["in"], ctx.with_vars(defs), new_scope)


def compile_fast(spec, ctx=None):
    """``f(doc, vars)`` for an expression: generated code where possible, the closure otherwise."""
    if ctx is None:
        ctx = X.Ctx()
    closure = X.compile_expression(spec, ctx)  # validates; the reference semantics
    if X._is_const(closure) or (isinstance(spec, str)) or not isinstance(spec, (dict, list)):
        return closure
    g = _Gen()
    try:
        result = g.gen(spec, ctx, {})
    except RecursionError:
        return closure
    name = f"_expr{next(_counter)}"
    src = f"def {name}(doc, vars):\n" + "\n".join(g.prologue + g.lines) + f"\n    return {result}\n"
    try:
        code = compile(src, f"<filter expression {name}>", "exec")
    except (SyntaxError, RecursionError, ValueError, MemoryError):  # e.g. too deeply nested
        return closure
    ns = dict(g.ns)
    exec(code, ns)  # noqa: S102 - source generated above from a validated expression, names only
    fn = ns[name]
    fn.source = src
    return fn
