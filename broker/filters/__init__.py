"""User filters: MongoDB aggregation pipelines evaluated in the broker on enriched alerts.

Public API::

    from broker.filters import compile_pipeline, validate_pipeline, FilterCompileError, FilterRuntimeError

    f = compile_pipeline(pipeline)      # list, or (extended) JSON string; once per filter version
    f.passes(alert) -> dict | None      # first output document for one enriched alert, or None
    f.run(docs) -> list[dict]           # the pipeline over a list of documents (like aggregate)
    validate_pipeline(pipeline)         # raises FilterCompileError naming the refused operator

Errors: FilterCompileError when compiling ("unsupported operator $where in stage 1 ($match):
forbidden in filters"; attributes operator, stage_index, stage, forbidden); FilterRuntimeError
while running, where MongoDB would fail the aggregation ("can't $divide by zero").  Inputs are
never modified; outputs belong to the caller (copy=False to skip the copy).

Semantics are MongoDB's (missing vs null, BSON order, numeric types, paths through arrays,
variables); the engine is checked against the manual's examples (tests/filters/vectors) and
against the database's aggregate (tests/filters/test_engine_differential.py).  Expressions are
compiled twice: closures (the reference, engine/expressions.py) and generated Python code for
speed (engine/codegen.py).

The filter input (the alert + its history restricted to the filter's permissions) is built by
``broker.filters.inputs.filter_input``.
"""

from .engine import (
    CompiledPipeline, FilterCompileError, FilterError, FilterRuntimeError, compile_pipeline, validate_pipeline,
)

__all__ = [
    "CompiledPipeline", "compile_pipeline", "validate_pipeline", "FilterCompileError", "FilterRuntimeError",
    "FilterError",
]
