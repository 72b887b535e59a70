"""A pipeline run stage by stage (``mql.compile_staged``, behind a backtest's per-stage counts)
is the pipeline: on every document of the manual's vectors (tests/filters/vectors), run alone as a
filter runs on one alert, its output is ``passes``'s and "documents remain after stage k" is
"the prefix 1..k run alone yields a document"; a prefix that fails at run time ends the trace."""

from __future__ import annotations

import pytest

from mql import FilterCompileError, FilterRuntimeError, compile_pipeline, compile_staged

from . import same
from .test_engine_conformance import _load_cases

CASES = [c for c in _load_cases() if c.values[0].get("error_kind") != "compile"]


def prefixes_alone(pipeline, doc) -> list:
    """For k = 1..n: whether pipeline[:k] alone yields a document for ``doc``, up to the first that fails."""
    out = []
    for k in range(1, len(pipeline) + 1):
        try:
            out.append(bool(compile_pipeline(pipeline[:k]).run([doc])))
        except FilterRuntimeError:
            return out + [None]
    return out


@pytest.mark.parametrize("case,source", CASES)
def test_staged_run_equals_each_prefix_alone(case, source):
    try:
        staged = compile_staged(case["pipeline"])
    except FilterCompileError:
        pytest.skip("refused at compile time (a conformance case of its own)")
    whole = compile_pipeline(case["pipeline"])
    for doc in case.get("docs", [])[:20]:
        expected = prefixes_alone(case["pipeline"], doc)
        alive: list = []
        if expected and expected[-1] is None:
            with pytest.raises(FilterRuntimeError):
                staged.passes(doc, alive)
            assert alive == expected[:-1], (doc, alive, expected, source)
            continue
        out = staged.passes(doc, alive)
        assert alive == expected, (doc, alive, expected, source)
        assert same(out, whole.passes(doc)) is None, (doc, out, source)
        assert (out is not None) == alive[-1]
