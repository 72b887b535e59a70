"""Pipeline compilation: a filter version's aggregation pipeline → a ``CompiledPipeline``."""

from __future__ import annotations

import functools

from bson import json_util

from .errors import FilterCompileError, FilterError, FilterRuntimeError, UnsupportedOperator
from .expressions import Ctx
from .stages import PER_DOC, compile_stage

__all__ = ["CompiledPipeline", "StagedPipeline", "compile_pipeline", "compile_staged", "validate_pipeline",
           "parse_pipeline", "compile_stages"]


def parse_pipeline(pipeline) -> list:
    """A pipeline given as a list, or as a JSON / MongoDB extended-JSON string."""
    if isinstance(pipeline, (str, bytes)):
        try:
            pipeline = json_util.loads(pipeline)
        except Exception as exc:  # noqa: BLE001 - any parse error is a compile error
            raise FilterCompileError(f"pipeline is not valid (extended) JSON: {exc}") from None
    if isinstance(pipeline, dict):
        raise FilterCompileError("pipeline must be a list of stages, not an object")
    if not isinstance(pipeline, (list, tuple)):
        raise FilterCompileError(f"pipeline must be a list of stages, not {type(pipeline).__name__}")
    if not pipeline:
        raise FilterCompileError("pipeline must contain at least one stage")
    return list(pipeline)


def _chain(fns):
    fns = tuple(fns)
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        f1, f2 = fns

        def chain2(doc):
            doc = f1(doc)
            if doc is None:
                return None
            return f2(doc)
        return chain2
    if len(fns) == 3:
        f1, f2, f3 = fns

        def chain3(doc):
            doc = f1(doc)
            if doc is None:
                return None
            doc = f2(doc)
            if doc is None:
                return None
            return f3(doc)
        return chain3

    def chain(doc):
        for f in fns:
            doc = f(doc)
            if doc is None:
                return None
        return doc
    return chain


def _batch_of(chain):
    def per_doc_batch(docs):
        out = []
        for d in docs:
            r = chain(d)
            if r is not None:
                out.append(r)
        return out
    return per_doc_batch


def _compile_list(pipeline, ctx, nested=False, offset=0):
    """→ (batch functions, fused per-doc function or None)."""
    compiled = []
    for i, stage in enumerate(pipeline, 1):
        n = i + offset
        if not isinstance(stage, dict):
            raise FilterCompileError(f"stage {n} must be an object, not {type(stage).__name__}", stage_index=n)
        if len(stage) != 1:
            raise FilterCompileError(f"stage {n}: a pipeline stage specification object must contain exactly one "
                                     f"field, found {len(stage)}", stage_index=n)
        name, spec = next(iter(stage.items()))
        try:
            kind, fn = compile_stage(name, spec, ctx)
        except UnsupportedOperator as exc:
            what = "stage" if exc.operator == name else "operator"
            msg = (f"unsupported stage {name} in stage {n}" if what == "stage"
                   else f"unsupported operator {exc.operator} in stage {n} ({name})")
            if exc.forbidden:
                msg += ": forbidden in filters"
            raise UnsupportedOperator(msg, operator=exc.operator, stage_index=n, stage=name,
                                      forbidden=exc.forbidden) from None
        except FilterCompileError as exc:
            raise FilterCompileError(f"invalid {name} in stage {n}: {exc}", operator=exc.operator, stage_index=n,
                                     stage=name) from None
        except RecursionError:
            raise FilterCompileError(f"stage {n} ({name}) is nested too deeply", stage_index=n, stage=name) from None
        compiled.append((kind, fn))
    batches = []
    run_of_doc = []
    for kind, fn in compiled:
        if kind == PER_DOC:
            run_of_doc.append(fn)
            continue
        if run_of_doc:
            batches.append(_batch_of(_chain(run_of_doc)))
            run_of_doc = []
        batches.append(fn)
    fused = None
    if run_of_doc:
        if not batches:
            fused = _chain(run_of_doc)
        batches.append(_batch_of(_chain(run_of_doc)))
    return batches, fused


def compile_stages(pipeline, ctx=None, nested=False):
    """A nested pipeline ($facet) → run(docs) -> docs."""
    batches, _ = _compile_list(pipeline, ctx or Ctx(), nested)

    def run(docs):
        for b in batches:
            docs = b(docs)
        return docs
    return run


def own(value):
    """A copy of the dicts and lists of a value (leaves are immutable or shared: str, numbers,
    datetime, bytes, ObjectId...)."""
    t = type(value)
    if t is dict:
        return {k: (own(v) if type(v) is dict or type(v) is list else v) for k, v in value.items()}
    if t is list:
        return [own(v) if type(v) is dict or type(v) is list else v for v in value]
    if isinstance(value, dict):
        return {k: own(v) for k, v in value.items()}
    if isinstance(value, list):
        return [own(v) for v in value]
    return value


class CompiledPipeline:
    """A compiled filter pipeline.

    ``run(docs)`` evaluates the pipeline over a list of documents (like ``aggregate``);
    ``passes(doc)`` evaluates it on one alert and returns the first output document or None.
    Input documents are never modified.  Output documents belong to the caller (``copy=True``,
    the default); with ``copy=False`` they may share sub-objects with the input and with the
    filter's constants, and must not be mutated.
    """

    __slots__ = ("pipeline", "_batches", "_fused", "n_stages")

    def __init__(self, pipeline: list, batches, fused):
        self.pipeline = pipeline
        self._batches = tuple(batches)
        self._fused = fused
        self.n_stages = len(pipeline)

    def run(self, docs, copy: bool = True) -> list:
        docs = list(docs)
        try:
            for b in self._batches:
                docs = b(docs)
            if copy:
                docs = [own(d) for d in docs]
        except FilterError:
            raise
        except RecursionError:
            raise FilterRuntimeError("document or expression nested too deeply") from None
        except Exception as exc:  # noqa: BLE001 - anything else is a runtime error of this filter
            raise FilterRuntimeError(f"{type(exc).__name__}: {exc}") from exc
        return docs

    def passes(self, doc: dict, copy: bool = True):
        fused = self._fused
        if fused is not None:
            try:
                out = fused(doc)
                return own(out) if copy and out is not None else out
            except FilterError:
                raise
            except RecursionError:
                raise FilterRuntimeError("document or expression nested too deeply") from None
            except Exception as exc:  # noqa: BLE001
                raise FilterRuntimeError(f"{type(exc).__name__}: {exc}") from exc
        out = self.run([doc], copy=False)
        return (own(out[0]) if copy else out[0]) if out else None

    def __reduce__(self):
        # closures and generated code do not pickle: ship the pipeline, recompile on arrival (Dask)
        return (compile_pipeline, (self.pipeline,))

    def __repr__(self) -> str:
        names = [next(iter(s)) for s in self.pipeline]
        return f"CompiledPipeline({' | '.join(names)})"


def compile_pipeline(pipeline) -> CompiledPipeline:
    """Compile an aggregation pipeline (list, or JSON / extended-JSON string) once."""
    if isinstance(pipeline, str):
        return _compile_cached(pipeline)
    stages = parse_pipeline(pipeline)
    batches, fused = _compile_list(stages, Ctx())
    return CompiledPipeline(stages, batches, fused)


@functools.lru_cache(maxsize=2048)
def _compile_cached(text: str) -> CompiledPipeline:
    stages = parse_pipeline(text)
    batches, fused = _compile_list(stages, Ctx())
    return CompiledPipeline(stages, batches, fused)


class StagedPipeline:
    """A pipeline run one stage at a time, to see how far a document gets (a backtest's count of
    the alerts remaining after each stage).

    Each stage is compiled on its own exactly as within the whole pipeline (a stage's compilation
    depends on nothing but the stage), so the stream after stage k is the output of the prefix
    1..k run alone, and the output after the last stage is ``passes``'s.
    """

    __slots__ = ("pipeline", "_stages", "n_stages")

    def __init__(self, pipeline: list):
        self.pipeline = pipeline
        self._stages = tuple(CompiledPipeline([s], *_compile_list([s], Ctx(), offset=i))
                             for i, s in enumerate(pipeline))
        self.n_stages = len(pipeline)

    def passes(self, doc: dict, alive: list, copy: bool = True):
        """The first output document for ``doc`` or None, as ``CompiledPipeline.passes``; appends
        to ``alive``, after each stage run, whether documents remain (on a FilterRuntimeError it
        holds the stages run before the failing one, whose prefixes do not fail)."""
        docs = [doc]
        for stage in self._stages:
            docs = stage.run(docs, copy=False)
            alive.append(bool(docs))
        if not docs:
            return None
        return own(docs[0]) if copy else docs[0]

    def __reduce__(self):
        return (compile_staged, (self.pipeline,))


def compile_staged(pipeline) -> StagedPipeline:
    """Compile a pipeline (list or JSON string) to run stage by stage (``StagedPipeline``)."""
    if isinstance(pipeline, str):
        return _staged_cached(pipeline)
    return StagedPipeline(parse_pipeline(pipeline))


@functools.lru_cache(maxsize=256)
def _staged_cached(text: str) -> StagedPipeline:
    return StagedPipeline(parse_pipeline(text))


def validate_pipeline(pipeline) -> None:
    """Raise FilterCompileError when the pipeline would be refused (unknown/forbidden operators, bad specs)."""
    compile_pipeline(pipeline)
