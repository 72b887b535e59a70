"""The filter engine: MongoDB aggregation pipelines compiled to Python closures.

See ``broker.filters`` for the public API.
"""

from .compile import CompiledPipeline, compile_pipeline, parse_pipeline, validate_pipeline
from .errors import FilterCompileError, FilterError, FilterRuntimeError
from .bson_order import MISSING, compare, type_name
from .expressions import evaluate

__all__ = [
    "CompiledPipeline", "compile_pipeline", "parse_pipeline", "validate_pipeline", "FilterCompileError",
    "FilterError", "FilterRuntimeError", "MISSING", "compare", "type_name", "evaluate",
]
