"""Dotted field paths: in aggregation expressions, in the query language, in $sort and $unwind.

Expression paths (``"$a.b"``): an array met on the way is mapped element by element
(sub-documents continue the path, nested arrays recurse, scalars are dropped, missing results are
omitted), so ``"$prv_candidates.rb"`` is the array of the ``rb`` values.  Numeric components
are field names, never array indexes.

Query paths (``{"a.b": ...}``): every value reachable through the path is a candidate; an
array met on the way continues the path in each of its sub-documents, and a numeric component
also indexes the array; a leaf array contributes its elements and itself (one level).  A path
that stops on a non-document yields MISSING, a path that continues through an array only yields
what its sub-documents (or the indexed element) give.
"""

from __future__ import annotations

from .bson_order import MISSING


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


# --- expressions ----------------------------------------------------------------------------

def _expr_array(arr, parts, i):
    if i == len(parts) - 1:  # the common "$array.field": one level
        p = parts[i]
        out = [v for e in arr if type(e) is dict and (v := e.get(p, MISSING)) is not MISSING]
        for e in arr:
            if type(e) is not dict:
                break
        else:
            return out
        out = []
        for e in arr:
            if type(e) is dict:
                v = e.get(p, MISSING)
                if v is not MISSING:
                    out.append(v)
            elif isinstance(e, dict):
                v = e.get(p, MISSING)
                if v is not MISSING:
                    out.append(v)
            elif isinstance(e, list):
                out.append(_expr_array(e, parts, i))
        return out
    out = []
    for e in arr:
        if isinstance(e, dict):
            r = _expr_walk(e, parts, i)
            if r is not MISSING:
                out.append(r)
        elif isinstance(e, list):
            out.append(_expr_array(e, parts, i))
    return out


def _expr_walk(v, parts, i):
    n = len(parts)
    while i < n:
        t = type(v)
        if t is dict:
            v = v.get(parts[i], MISSING)
            i += 1
            if i == n:
                return v
            t = type(v)
            if t is dict:
                continue
        if t is list:
            return _expr_array(v, parts, i)
        if isinstance(v, dict):
            v = v.get(parts[i], MISSING)
            i += 1
            continue
        if isinstance(v, list):
            return _expr_array(v, parts, i)
        return MISSING
    return v


def expr_getter(parts: tuple[str, ...]):
    """A function value → value for the remaining path ``parts`` of an expression field path."""
    n = len(parts)
    if n == 1:
        (a,) = parts

        def get1(v):
            if type(v) is dict:
                return v.get(a, MISSING)
            return _expr_walk(v, parts, 0)
        return get1
    if n == 2:
        a, b = parts

        def get2(v):
            if type(v) is dict:
                w = v.get(a, MISSING)
                if type(w) is dict:
                    return w.get(b, MISSING)
                if type(w) is list:
                    return _expr_array(w, parts, 1)
                if w is MISSING or not isinstance(w, (dict, list)):
                    return MISSING
                return _expr_walk(w, parts, 1)
            return _expr_walk(v, parts, 0)
        return get2

    def getn(v):
        return _expr_walk(v, parts, 0)
    return getn


# --- query language -------------------------------------------------------------------------

def _q_walk(v, parts, i, expand, out):
    n = len(parts)
    while i < n:
        if isinstance(v, dict):
            v = v.get(parts[i], MISSING)
            i += 1
        elif isinstance(v, list):
            p = parts[i]
            # every element document continues the path with this component as a field name
            for e in v:
                if isinstance(e, dict):
                    _q_walk(e, parts, i, expand, out)
            if p.isdigit():  # ... and a numeric component also indexes the array
                idx = int(p)
                if idx < len(v):
                    _q_walk(v[idx], parts, i + 1, expand, out)
                else:
                    out.append(MISSING)
            return
        else:
            out.append(MISSING)
            return
    if expand and isinstance(v, list):
        out.extend(v)
        if expand == 2:
            return
    out.append(v)


def query_values(doc, parts, expand: bool = True) -> list:
    """Every candidate value of a query path (see module doc)."""
    out: list = []
    _q_walk(doc, parts, 0, expand, out)
    return out


def query_getter(parts: tuple[str, ...], expand: bool = True):
    """(fast, slow): ``fast(doc)`` returns the single value when no array is crossed and the
    leaf is not an array (when ``expand``), else the marker ``_SLOW``; ``slow(doc)`` returns the
    list of candidate values."""
    n = len(parts)

    if n == 1:
        (a,) = parts

        def fast1(doc):
            v = doc.get(a, MISSING) if type(doc) is dict else _SLOW
            if type(v) is list:
                return _SLOW
            return v
        fast = fast1
    elif n == 2:
        a, b = parts

        def fast2(doc):
            if type(doc) is not dict:
                return _SLOW
            v = doc.get(a, MISSING)
            t = type(v)
            if t is dict:
                v = v.get(b, MISSING)
                if type(v) is list:
                    return _SLOW
                return v
            if t is list:
                return _SLOW
            return MISSING
        fast = fast2
    else:
        def fastn(doc):
            v = doc
            for p in parts:
                t = type(v)
                if t is dict:
                    v = v.get(p, MISSING)
                elif t is list:
                    return _SLOW
                elif v is MISSING:
                    return MISSING
                elif isinstance(v, (dict, list)):
                    return _SLOW
                else:
                    return MISSING
            if type(v) is list:
                return _SLOW
            return v
        fast = fastn

    def slow(doc):
        out: list = []
        _q_walk(doc, parts, 0, expand, out)
        return out
    return fast, slow


class _SlowMarker:
    __slots__ = ()

    def __repr__(self):
        return "_SLOW"


_SLOW = _SlowMarker()


# --- sort keys ------------------------------------------------------------------------------

def sort_values(doc, parts) -> list:
    """Candidate values for a $sort key: leaf arrays contribute their elements (not themselves);
    an empty result means an empty array (which sorts before null)."""
    out: list = []
    _q_walk(doc, parts, 0, 2, out)
    return out


# --- writing --------------------------------------------------------------------------------

def get_plain(doc, parts):
    """Follow a path through sub-documents only (Document::getNestedField)."""
    v = doc
    for p in parts:
        if isinstance(v, dict):
            v = v.get(p, MISSING)
        else:
            return MISSING
    return v


def set_plain(doc: dict, parts, value) -> dict:
    """A copy of ``doc`` with ``parts`` set to ``value`` (copy-on-write along the path;
    MISSING removes the field)."""
    out = dict(doc)
    if len(parts) == 1:
        if value is MISSING:
            out.pop(parts[0], None)
        else:
            out[parts[0]] = value
        return out
    sub = out.get(parts[0], MISSING)
    if not isinstance(sub, dict):
        sub = {}
    out[parts[0]] = set_plain(sub, parts[1:], value)
    return out
