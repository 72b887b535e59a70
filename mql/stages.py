"""Aggregation stages.

Each stage compiles to either a per-document function ``f(doc) -> doc | None`` ($match,
$project, $addFields/$set, $unset, $replaceRoot/$replaceWith) or a batch function
``f(docs) -> docs`` ($unwind, $group, $sort, $limit, $skip, $count, $facet).  No stage mutates
its input: documents are rebuilt copy-on-write, sharing unmodified sub-objects.
"""

from __future__ import annotations

import functools

from .bson_order import MISSING, R_NUMBER, compare, fmt, group_key, rank, to_pynum, type_name
from .errors import FilterCompileError, FilterRuntimeError, UnsupportedOperator
from .codegen import compile_fast as compile_expression
from .expressions import FORBIDDEN_OPERATORS, Ctx, acc_avg, acc_max, acc_min, acc_std_pop, acc_std_samp, acc_sum
from .paths import get_plain, set_plain, sort_values
from .query import compile_query

__all__ = ["compile_stage", "PER_DOC", "BATCH", "STAGES"]

PER_DOC = "doc"
BATCH = "batch"


def _cerr(msg, op=None):
    return FilterCompileError(msg, operator=op)


# --- projection trees -------------------------------------------------------------------------

class _PNode:
    __slots__ = ("included", "excluded", "children", "computed", "order", "has_computed", "has_included")

    def __init__(self):
        self.included: set[str] = set()
        self.excluded: set[str] = set()
        self.children: dict[str, _PNode] = {}
        self.computed: dict = {}
        self.order: list[str] = []  # computed fields and children, in specification order
        self.has_computed = False
        self.has_included = False

    def child(self, name: str, path: str) -> "_PNode":
        if name in self.included or name in self.excluded or name in self.computed:
            raise _cerr(f"Invalid specification: path collision at {path}")
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = _PNode()
            self.order.append(name)
        return node

    def leaf(self, name: str, path: str):
        if name in self.included or name in self.excluded or name in self.computed or name in self.children:
            raise _cerr(f"Invalid specification: path collision at {path}")

    def finish(self) -> None:
        for c in self.children.values():
            c.finish()
        self.has_computed = bool(self.computed) or any(c.has_computed for c in self.children.values())
        self.has_included = bool(self.included) or any(c.has_included for c in self.children.values())
        # apply order: only names that carry computed values
        self.order = [n for n in self.order if n in self.computed or self.children[n].has_computed]


def _check_field_path(path: str, stage: str):
    if not isinstance(path, str) or path == "":
        raise _cerr(f"{stage}: field names must be non-empty strings")
    parts = path.split(".")
    for p in parts:
        if p == "":
            raise _cerr(f"{stage}: FieldPath field names may not be empty strings: {path!r}")
        if p.startswith("$"):
            raise _cerr(f"{stage}: FieldPath field names may not start with '$': {path!r}")
    return parts


def _is_nested_spec(v) -> bool:
    return isinstance(v, dict) and bool(v) and not (isinstance(next(iter(v)), str) and next(iter(v)).startswith("$"))


def _parse_projection(spec, ctx: Ctx, stage: str):
    """$project spec → (mode, root node, include_id)."""
    if not isinstance(spec, dict):
        raise _cerr(f"{stage} specification must be an object")
    if not spec:
        raise _cerr("Invalid $project :: caused by :: projection specification must have at least one field")
    root = _PNode()
    state = {"mode": None, "id": True, "id_set": False}

    def set_mode(m, path):
        if state["mode"] is None:
            state["mode"] = m
        elif state["mode"] != m:
            if m == "exclusion":
                raise _cerr(f"Invalid $project :: caused by :: Cannot do exclusion on field {path} in inclusion "
                            "projection")
            raise _cerr(f"Invalid $project :: caused by :: Cannot do inclusion on field {path} in exclusion "
                        "projection")

    def walk(prefix: list[str], key, val):
        parts = prefix + _check_field_path(key, stage)
        path = ".".join(parts)
        if isinstance(val, bool) or (rank(val) == R_NUMBER and not isinstance(val, bool)
                                     and not isinstance(val, (dict, list))):
            include = bool(to_pynum(val)) if not isinstance(val, bool) else val
            if parts == ["_id"]:
                state["id"] = include
                state["id_set"] = True
                return
            set_mode("inclusion" if include else "exclusion", path)
            node = root
            for i, p in enumerate(parts[:-1]):
                node = node.child(p, ".".join(parts[:i + 1]))
            node.leaf(parts[-1], path)
            (node.included if include else node.excluded).add(parts[-1])
            return
        if isinstance(val, dict) and not val:
            raise _cerr(f"Invalid $project :: caused by :: An empty sub-projection is not a valid value. Found "
                        f"empty object at path {path}")
        if _is_nested_spec(val):
            for k2, v2 in val.items():
                if isinstance(k2, str) and k2.startswith("$"):
                    raise _cerr(f"Invalid $project :: caused by :: FieldPath field names may not start with '$'. "
                                f"Consider using $getField or $setField. ({path}.{k2})")
                walk(parts, k2, v2)
            return
        # a computed field
        if parts == ["_id"]:
            state["id"] = False
            state["id_set"] = True
        set_mode("inclusion", path) if state["mode"] != "exclusion" else _raise_computed_in_exclusion(path)
        _add_computed(root, parts, path, val, ctx)

    for k, v in spec.items():
        walk([], k, v)
    mode = state["mode"]
    if mode is None:  # only _id was specified
        mode = "inclusion" if state["id"] else "exclusion"
    if mode == "inclusion":
        if state["id"] and "_id" not in root.computed:
            root.leaf("_id", "_id")
            root.included.add("_id")
    elif not state["id"]:
        root.excluded.add("_id")
    root.finish()
    return mode, root


def _add_computed(root: _PNode, parts: list, path: str, val, ctx: Ctx) -> None:
    """The computed field ``val`` at ``parts`` below ``root`` (nodes on the way made as needed)."""
    node = root
    for i, p in enumerate(parts[:-1]):
        node = node.child(p, ".".join(parts[:i + 1]))
    node.leaf(parts[-1], path)
    node.computed[parts[-1]] = compile_expression(val, ctx)
    node.order.append(parts[-1])


def _raise_computed_in_exclusion(path):
    raise _cerr(f"Invalid $project :: caused by :: Cannot use expression other than $meta in exclusion "
                f"projection ({path})")


def _parse_add_fields(spec, ctx: Ctx, stage: str) -> _PNode:
    if not isinstance(spec, dict):
        raise _cerr(f"{stage} specification stage must be an object, got {type_name(spec)}")
    root = _PNode()

    def walk(prefix, key, val):
        parts = prefix + _check_field_path(key, stage)
        path = ".".join(parts)
        if _is_nested_spec(val):
            for k2, v2 in val.items():
                if isinstance(k2, str) and k2.startswith("$"):
                    raise _cerr(f"Invalid {stage} :: caused by :: FieldPath field names may not start with '$'")
                walk(parts, k2, v2)
            return
        _add_computed(root, parts, path, val, ctx)

    for k, v in spec.items():
        walk([], k, v)
    root.finish()
    return root


# application --------------------------------------------------------------------------------

def _computed_only(node: _PNode, root, vars) -> dict:
    """A new document holding only the computed fields of ``node`` (for scalar / missing inputs)."""
    out = {}
    for name in node.order:
        f = node.computed.get(name)
        if f is not None:
            v = f(root, vars)
            if v is not MISSING:
                out[name] = v
        else:
            out[name] = _computed_only(node.children[name], root, vars)
    return out


def _inclusion(node: _PNode, value, root, vars):
    t = type(value)
    if t is dict or isinstance(value, dict):
        out = {}
        inc = node.included
        ch = node.children
        if inc or ch:
            for k, v in value.items():
                if k in inc:
                    out[k] = v
                elif k in ch:
                    r = _inclusion(ch[k], v, root, vars)
                    if r is not MISSING:
                        out[k] = r
        if node.has_computed:
            for name in node.order:
                f = node.computed.get(name)
                if f is not None:
                    _put(out, name, f(root, vars))
                elif name not in out:
                    out[name] = _computed_only(ch[name], root, vars)
        return out
    if t is list or isinstance(value, list):
        res = []
        for e in value:
            r = _inclusion(node, e, root, vars)
            if r is not MISSING:
                res.append(r)
        return res
    if node.has_computed:
        return _computed_only(node, root, vars)
    return MISSING


def _put(out: dict, name: str, value) -> None:
    """``out[name] = value``; a missing value removes ``name`` instead (as MongoDB does)."""
    if value is MISSING:
        out.pop(name, None)
    else:
        out[name] = value


def _add_fields(node: _PNode, value, root, vars):
    t = type(value)
    if t is dict or isinstance(value, dict):
        out = dict(value)
        ch = node.children
        for name in node.order:
            f = node.computed.get(name)
            if f is not None:
                _put(out, name, f(root, vars))
            else:
                out[name] = _add_fields(ch[name], value.get(name, MISSING), root, vars)
        return out
    if t is list or isinstance(value, list):
        return [_add_fields(node, e, root, vars) for e in value]
    return _computed_only(node, root, vars)


def _exclusion(node: _PNode, value):
    t = type(value)
    if t is dict or isinstance(value, dict):
        exc = node.excluded
        ch = node.children
        out = {}
        for k, v in value.items():
            if k in exc:
                continue
            if k in ch:
                out[k] = _exclusion(ch[k], v)
            else:
                out[k] = v
        return out
    if t is list or isinstance(value, list):
        return [_exclusion(node, e) for e in value]
    return value


# --- stage compilers --------------------------------------------------------------------------

def _c_match(spec, ctx, name, sub):
    if not isinstance(spec, dict):
        raise _cerr("the match filter must be an expression in an object")
    m = compile_query(spec, ctx)

    def match(doc):
        return doc if m(doc) else None
    match.matcher = m
    return PER_DOC, match


def _c_project(spec, ctx, name, sub):
    mode, root = _parse_projection(spec, ctx, name)
    if mode == "exclusion":
        def project_exclusion(doc):
            return _exclusion(root, doc)
        return PER_DOC, project_exclusion
    if not root.children and not root.has_computed:
        fields = tuple(root.included)
        if len(fields) <= 8:
            inc = frozenset(fields)

            def project_flat(doc):
                return {k: v for k, v in doc.items() if k in inc}
            return PER_DOC, project_flat

    def project(doc):
        return _inclusion(root, doc, doc, {"ROOT": doc})
    return PER_DOC, project


def _c_add_fields(spec, ctx, name, sub):
    root = _parse_add_fields(spec, ctx, name)
    if not root.order:
        return PER_DOC, lambda doc: doc

    def add_fields(doc):
        return _add_fields(root, doc, doc, {"ROOT": doc})
    return PER_DOC, add_fields


def _c_unset(spec, ctx, name, sub):
    fields = [spec] if isinstance(spec, str) else spec
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise _cerr("$unset specification must be a string or an array with at least one field")
    root = _PNode()
    for f in fields:
        parts = _check_field_path(f, name)
        node = root
        for i, p in enumerate(parts[:-1]):
            node = node.child(p, ".".join(parts[:i + 1]))
        node.leaf(parts[-1], f)
        node.excluded.add(parts[-1])
    root.finish()

    def unset(doc):
        return _exclusion(root, doc)
    return PER_DOC, unset


def _c_replace_root(spec, ctx, name, sub):
    if name == "$replaceRoot":
        if not isinstance(spec, dict) or "newRoot" not in spec:
            raise _cerr("no newRoot specified for the $replaceRoot stage")
        for k in spec:
            if k != "newRoot":
                raise _cerr(f"unrecognized option to $replaceRoot stage: {k}")
        expr = spec["newRoot"]
        what = "'newRoot' expression "
    else:
        expr = spec
        what = "'replacement document' "
    f = compile_expression(expr, ctx)

    def replace_root(doc):
        v = f(doc, {"ROOT": doc})
        if not isinstance(v, dict):
            raise FilterRuntimeError(f"{what}must evaluate to an object, but resulting value was: {fmt(v)}. "
                                     f"Type of resulting value: '{type_name(v)}'. Input document: {fmt(doc)}",
                                     code=40228)
        return v
    return PER_DOC, replace_root


def _c_unwind(spec, ctx, name, sub):
    include_index = None
    preserve = False
    if isinstance(spec, str):
        path = spec
    elif isinstance(spec, dict):
        if "path" not in spec:
            raise _cerr("no path specified to $unwind stage")
        path = spec["path"]
        for k, v in spec.items():
            if k == "path":
                continue
            if k == "includeArrayIndex":
                if not isinstance(v, str) or not v or v.startswith("$"):
                    raise _cerr("includeArrayIndex option to $unwind stage should not be prefixed with a '$': "
                                f"{v}" if isinstance(v, str) and v.startswith("$") else
                                "expected a non-empty string for the includeArrayIndex option to $unwind stage")
                include_index = tuple(v.split("."))
            elif k == "preserveNullAndEmptyArrays":
                if not isinstance(v, bool):
                    raise _cerr("expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage")
                preserve = v
            else:
                raise _cerr(f"unrecognized option to $unwind stage: {k}")
    else:
        raise _cerr("expected either a string or an object as specification for $unwind stage, got "
                    f"{type_name(spec)}")
    if not isinstance(path, str) or not path.startswith("$"):
        raise _cerr(f"path option to $unwind stage should be prefixed with a '$': {path}")
    parts = tuple(_check_field_path(path[1:], name))

    def unwind(docs):
        out = []
        for doc in docs:
            v = get_plain(doc, parts)
            if type(v) is list:
                if not v:
                    if preserve:
                        d = set_plain(doc, parts, MISSING)
                        out.append(set_plain(d, include_index, None) if include_index else d)
                    continue
                for i, e in enumerate(v):
                    d = set_plain(doc, parts, e)
                    if include_index:
                        d = set_plain(d, include_index, i)
                    out.append(d)
            elif v is None or v is MISSING:
                if preserve:
                    out.append(set_plain(doc, include_index, None) if include_index else doc)
            else:
                out.append(set_plain(doc, include_index, None) if include_index else doc)
        return out
    return BATCH, unwind


_GROUP_ACCUMULATORS = {
    "$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet", "$count", "$stdDevPop",
    "$stdDevSamp", "$mergeObjects",
}
_FINAL = {"$sum": acc_sum, "$avg": acc_avg, "$min": acc_min, "$max": acc_max, "$stdDevPop": acc_std_pop,
          "$stdDevSamp": acc_std_samp}


def _c_group(spec, ctx, name, sub):
    if not isinstance(spec, dict):
        raise _cerr("a group's fields must be specified in an object")
    if "_id" not in spec:
        raise _cerr("a group specification must include an _id")
    id_f = compile_expression(spec["_id"], ctx)
    accs = []
    for field, acc in spec.items():
        if field == "_id":
            continue
        if not isinstance(field, str) or field.startswith("$"):
            raise _cerr(f"The field name '{field}' cannot be an operator name")
        if "." in field:
            raise _cerr(f"The field name '{field}' cannot contain '.'")
        if not isinstance(acc, dict) or len(acc) != 1:
            raise _cerr(f"The field '{field}' must be an accumulator object")
        (op, arg), = acc.items()
        if op in FORBIDDEN_OPERATORS:
            raise UnsupportedOperator(f"forbidden operator {op}", operator=op, forbidden=True)
        if op not in _GROUP_ACCUMULATORS:
            raise UnsupportedOperator(f"unsupported operator {op}", operator=op)
        if op == "$count":
            if arg != {}:
                raise _cerr("$count takes no arguments, i.e. $count:{}")
            accs.append((field, op, None))
            continue
        if isinstance(arg, list) and op not in ("$push", "$addToSet"):
            if len(arg) != 1:
                raise _cerr(f"The {op} accumulator is a unary operator")
        accs.append((field, op, compile_expression(arg, ctx)))

    def group(docs):
        groups: dict = {}
        for doc in docs:
            vars = {"ROOT": doc}
            idv = id_f(doc, vars)
            if idv is MISSING:
                idv = None
            k = group_key(idv)
            st = groups.get(k)
            if st is None:
                st = groups[k] = [idv] + [[] for _ in accs]
            for i, (field, op, f) in enumerate(accs, 1):
                if op == "$count":
                    st[i].append(1)
                else:
                    st[i].append(f(doc, vars))
        out = []
        for st in groups.values():
            d = {"_id": st[0]}
            for i, (field, op, f) in enumerate(accs, 1):
                vals = st[i]
                if op == "$count":
                    d[field] = len(vals)
                elif op == "$first":
                    d[field] = None if vals[0] is MISSING else vals[0]
                elif op == "$last":
                    d[field] = None if vals[-1] is MISSING else vals[-1]
                elif op == "$push":
                    d[field] = [v for v in vals if v is not MISSING]
                elif op == "$addToSet":
                    seen = set()
                    res = []
                    for v in vals:
                        if v is MISSING:
                            continue
                        gk = group_key(v)
                        if gk not in seen:
                            seen.add(gk)
                            res.append(v)
                    d[field] = res
                elif op == "$mergeObjects":
                    m = {}
                    for v in vals:
                        if v is None or v is MISSING:
                            continue
                        if not isinstance(v, dict):
                            raise FilterRuntimeError(f"$mergeObjects requires object inputs, but input {fmt(v)} "
                                                     f"is of type {type_name(v)}", code=40400)
                        m.update(v)
                    d[field] = m
                else:
                    d[field] = _FINAL[op](vals)
            out.append(d)
        return out
    return BATCH, group


def _sort_key_fn(spec, name):
    if not isinstance(spec, dict) or not spec:
        raise _cerr("$sort key specification must be an object" if not isinstance(spec, dict)
                    else "$sort stage must have at least one sort key")
    fields = []
    for k, d in spec.items():
        parts = tuple(_check_field_path(k, name))
        if isinstance(d, dict):
            raise UnsupportedOperator("unsupported operator $meta", operator="$meta")
        if isinstance(d, bool) or rank(d) != R_NUMBER or to_pynum(d) not in (1, -1):
            raise _cerr("$sort key ordering must be 1 (for ascending) or -1 (for descending)")
        fields.append((parts, int(to_pynum(d))))

    def key_of(doc):
        keys = []
        for parts, d in fields:
            vals = sort_values(doc, parts)
            if not vals:
                keys.append(MISSING)  # empty array: before null
                continue
            best = None if vals[0] is MISSING else vals[0]
            for v in vals[1:]:
                if v is MISSING:
                    v = None
                c = compare(v, best)
                if (d > 0 and c < 0) or (d < 0 and c > 0):
                    best = v
            keys.append(best)
        return keys

    dirs = [d for _, d in fields]

    def cmp(a, b):
        for x, y, d in zip(a, b, dirs):
            c = compare(x, y)
            if c:
                return c if d > 0 else -c
        return 0
    return key_of, functools.cmp_to_key(cmp)


def _c_sort(spec, ctx, name, sub):
    key_of, wrap = _sort_key_fn(spec, name)

    def sort(docs):
        keyed = [(wrap(key_of(d)), i, d) for i, d in enumerate(docs)]
        keyed.sort(key=lambda t: (t[0], t[1]))
        return [d for _, _, d in keyed]
    return BATCH, sort


def _positive_int(spec, what, allow_zero=False):
    if isinstance(spec, bool) or rank(spec) != R_NUMBER:
        raise _cerr(f"invalid argument to {what} stage: Expected a number in: {what}: {fmt(spec)}")
    x = to_pynum(spec)
    if x != x or float(x) != int(x):
        raise _cerr(f"invalid argument to {what} stage: Expected an integer: {what}: {fmt(spec)}")
    n = int(x)
    if n < 0 or (n == 0 and not allow_zero):
        raise _cerr(f"invalid argument to {what} stage: Expected a {'non-negative' if allow_zero else 'positive'} "
                    f"number in: {what}: {n}")
    return n


def _c_limit(spec, ctx, name, sub):
    n = _positive_int(spec, "$limit")
    return BATCH, lambda docs: docs[:n]


def _c_skip(spec, ctx, name, sub):
    n = _positive_int(spec, "$skip", allow_zero=True)
    return BATCH, lambda docs: docs[n:]


def _c_count(spec, ctx, name, sub):
    if not isinstance(spec, str):
        raise _cerr("the count field must be a non-empty string")
    if not spec:
        raise _cerr("the count field must be a non-empty string")
    if spec.startswith("$"):
        raise _cerr("the count field cannot be a $-prefixed path")
    if "." in spec:
        raise _cerr("the count field cannot contain '.'")
    return BATCH, lambda docs: [{spec: len(docs)}] if docs else []


_FACET_FORBIDDEN = {"$facet", "$out", "$merge", "$geoNear", "$indexStats", "$collStats", "$changeStream",
                    "$search", "$unionWith", "$lookup", "$graphLookup"}


def _c_facet(spec, ctx, name, sub):
    if not isinstance(spec, dict) or not spec:
        raise _cerr("the $facet specification must be a non-empty object")
    from .compile import compile_stages  # circular
    facets = []
    for fname, pipeline in spec.items():
        if not isinstance(fname, str) or not fname or fname.startswith("$") or "." in fname:
            raise _cerr(f"$facet output field names must be valid field names: {fname!r}")
        if not isinstance(pipeline, list):
            raise _cerr(f"arguments to $facet must be arrays, {fname} is type {type_name(pipeline)}")
        for st in pipeline:
            if isinstance(st, dict) and len(st) == 1:
                sname = next(iter(st))
                if sname in _FACET_FORBIDDEN:
                    if sname in FORBIDDEN_OPERATORS:
                        raise UnsupportedOperator(f"forbidden operator {sname}", operator=sname, forbidden=True)
                    raise _cerr(f"{sname} is not allowed to be used within a $facet stage")
        facets.append((fname, compile_stages(pipeline, ctx, nested=True)))

    def facet(docs):
        return [{fname: run(list(docs)) for fname, run in facets}]
    return BATCH, facet


STAGES = {
    "$match": _c_match, "$project": _c_project, "$addFields": _c_add_fields, "$set": _c_add_fields,
    "$unset": _c_unset, "$replaceRoot": _c_replace_root, "$replaceWith": _c_replace_root,
    "$unwind": _c_unwind, "$group": _c_group, "$sort": _c_sort, "$limit": _c_limit, "$skip": _c_skip,
    "$count": _c_count, "$facet": _c_facet,
}


def compile_stage(name: str, spec, ctx: Ctx):
    comp = STAGES.get(name)
    if comp is None:
        if name in FORBIDDEN_OPERATORS:
            raise UnsupportedOperator(f"forbidden stage {name}", operator=name, forbidden=True)
        raise UnsupportedOperator(f"unsupported stage {name}", operator=name)
    return comp(spec, ctx, name, None)
