"""Errors raised by the filter engine.

``FilterCompileError`` is raised when a pipeline is compiled (i.e. when a filter version is
saved): unknown, unsupported or forbidden operators and malformed stages.  ``FilterRuntimeError``
is raised while a compiled pipeline runs on a document, where MongoDB would fail the aggregation
(e.g. ``$sqrt`` of a negative number, ``$arrayElemAt`` on a non-array, ``$divide`` by zero).
"""

from __future__ import annotations


class FilterError(Exception):
    """Base class of the filter engine's errors."""


class FilterCompileError(FilterError, ValueError):
    """The pipeline cannot be compiled; the message names the offending operator/stage."""

    def __init__(self, message: str, *, operator: str | None = None, stage_index: int | None = None,
                 stage: str | None = None, forbidden: bool = False):
        super().__init__(message)
        self.operator = operator
        self.stage_index = stage_index
        self.stage = stage
        self.forbidden = forbidden


class UnsupportedOperator(FilterCompileError):
    """An operator that the engine does not implement (or refuses as forbidden)."""


class FilterRuntimeError(FilterError):
    """An error MongoDB would raise while running the aggregation on a document."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code
