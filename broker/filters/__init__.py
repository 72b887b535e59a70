"""User filters: MongoDB aggregation pipelines evaluated in the broker on enriched alerts.

Public API::

    from broker.filters import compile_pipeline, validate_pipeline, FilterCompileError, FilterRuntimeError

    f = compile_pipeline(pipeline)      # list, or (extended) JSON string; once per filter version
    f.passes(alert) -> dict | None      # first output document for one enriched alert, or None
    f.run(docs) -> list[dict]           # the pipeline over a list of documents (like aggregate)
    validate_pipeline(pipeline)         # raises FilterCompileError naming the refused operator

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
