"""mql: MongoDB aggregation pipelines evaluated in Python, with MongoDB's semantics.

Users' filters are aggregation pipelines; the broker runs them on each enriched alert, the API compiles
and tests them, the cross-match and backtests reuse them. None of that belongs to one component, so
the engine is a package of its own that depends on nothing but ``bson``.

Public API::

    from mql import compile_pipeline, validate_pipeline, FilterCompileError, FilterRuntimeError

    f = compile_pipeline(pipeline)      # list, or (extended) JSON string; once per filter version
    f.passes(alert) -> dict | None      # first output document for one enriched alert, or None
    f.run(docs) -> list[dict]           # the pipeline over a list of documents (like aggregate)
    s = compile_staged(pipeline)        # the same, one stage at a time (backtests' per-stage counts)
    s.passes(alert, alive) -> dict | None   # as f.passes; alive[k]: documents remain after stage k+1
    validate_pipeline(pipeline)         # raises FilterCompileError naming the refused operator

Errors: FilterCompileError when compiling ("unsupported operator $where in stage 1 ($match):
forbidden in filters"; attributes operator, stage_index, stage, forbidden); FilterRuntimeError
while running, where MongoDB would fail the aggregation ("can't $divide by zero").  Inputs are
never modified; outputs belong to the caller (copy=False to skip the copy).

Semantics are MongoDB's (missing vs null, BSON order, numeric types, paths through arrays,
variables); the engine is checked against the manual's examples (tests/filters/vectors) and
against the database's aggregate (tests/filters/test_engine_differential.py).  Expressions are
compiled twice: closures (the reference, mql/expressions/, one module per operator family) and generated Python code for
speed (mql/codegen.py).

The filter input (the alert + its history restricted to the filter's permissions) is built by the
core's ``kowalski.filters.inputs.filter_input``.
"""

from .compile import (CompiledPipeline, StagedPipeline, compile_pipeline, compile_staged, parse_pipeline,
                      validate_pipeline)
from .errors import FilterCompileError, FilterError, FilterRuntimeError
from .bson_order import MISSING, compare, type_name
from .expressions import evaluate

__all__ = [
    "CompiledPipeline", "StagedPipeline", "compile_pipeline", "compile_staged", "parse_pipeline", "validate_pipeline", "FilterCompileError",
    "FilterError", "FilterRuntimeError", "MISSING", "compare", "type_name", "evaluate",
]
