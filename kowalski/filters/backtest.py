"""Backtests: run a filter version over archived alerts through the filter engine.

The same engine the broker uses (never the database's ``aggregate``): alerts are read from
``<SURVEY>_alerts`` (without cutouts), their objects' aux documents in one query per chunk, each
alert's input is built as Kowalski's upstream pipeline does (``kowalski.filters.inputs``, with
``past_only`` as Kowalski's ``/filters/{id}/test``: only history points before the alert), and
the compiled pipeline runs on it.  Chunks are evaluated on a Dask cluster when a client is given.

Used by ``POST /api/filters/{id}/test`` (selection rules of Kowalski's test handler, see
``check_test_request``), ``kowalski filter backtest`` and the activation flood guard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from mql import compile_pipeline, compile_staged
from kowalski.filters.inputs import filter_input, upstream_spec
from kowalski.surveys import get_survey

MAX_OBJECT_IDS = 1000
MAX_TIME_MS = 300000
DEFAULT_TIME_MS = 30000


class BacktestError(ValueError):
    """A request that cannot be run (the message is meant for the user)."""


@dataclass
class Summary:
    alerts: int = 0
    passed: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    outputs: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.passed / self.alerts if self.alerts else 0.0

    def as_dict(self) -> dict:
        return {"alerts": self.alerts, "passed": self.passed, "rate": round(self.rate, 6), "errors": self.errors,
                "first_error": self.first_error, "seconds": round(self.seconds, 3),
                "alerts_per_second": round(self.alerts / self.seconds, 1) if self.seconds > 0 else None}


# --- catalogs -----------------------------------------------------------------------------------

def survey_of_catalog(config, catalog: str) -> str:
    """The survey whose alert collection is ``catalog`` (e.g. ZTF_alerts -> ztf)."""
    collections = {get_survey(name, config).alerts_collection: name.lower() for name in config["surveys"]}
    if catalog in collections:
        return collections[catalog]
    raise BacktestError(f"unknown catalog {catalog!r}: filters run on {', '.join(collections)}")


# ``survey`` below: a survey definition, its name (process config) or its upstream view
# (``kowalski.filters.inputs.upstream_spec``); Dask tasks get the view, which needs no config.

def object_id_field(survey) -> str:
    return upstream_spec(survey).object_id


def cutout_projection(survey) -> dict:
    return {c: 0 for c in upstream_spec(survey).cutouts}


# --- Kowalski's /test request rules -------------------------------------------------------------

def _jd(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (float, str)):
        raise BacktestError(f"{name} must be a float or a string")
    if isinstance(value, float):
        return value
    try:
        from astropy.time import Time

        return float(Time(value).jd)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's
        raise BacktestError(f"{name} is not a valid time: {str(exc).splitlines()[0][:200]}") from None


def check_test_request(body: dict) -> dict:
    """Validate a ``/filters/{id}/test`` body as Kowalski does; returns
    ``{filter_version, object_ids, start_jd, end_jd, max_time_ms}``."""
    object_ids = body.get("object_ids")
    start, end = body.get("start_date"), body.get("end_date")
    if object_ids is None and start is None and end is None:
        raise BacktestError("At least one of object_ids, start_date, or end_date is required")
    if object_ids is not None:
        if not isinstance(object_ids, list):
            raise BacktestError("object_ids must be a list if provided")
        if len(object_ids) > MAX_OBJECT_IDS:
            raise BacktestError(f"object_ids list must have {MAX_OBJECT_IDS} or fewer elements")
        if not all(isinstance(o, str) for o in object_ids):
            raise BacktestError("object_ids must be a list of strings")
    if (start is None) != (end is None):
        raise BacktestError("start_date and end_date must both be provided if either is provided")
    start_jd = end_jd = None
    if start is not None:
        start_jd, end_jd = _jd(start, "start_date"), _jd(end, "end_date")
        if end_jd < start_jd:
            raise BacktestError("end_date must not be before start_date")
        if object_ids is None and end_jd - start_jd > 1:
            raise BacktestError("start_date and end_date must be within 1 day of each other if object_ids is "
                                "not provided")
    max_time_ms = body.get("max_time_ms")
    if max_time_ms is None:
        max_time_ms = DEFAULT_TIME_MS
    if isinstance(max_time_ms, bool) or not isinstance(max_time_ms, int) or max_time_ms <= 0:
        raise BacktestError("max_time_ms must be a positive integer")
    if max_time_ms > MAX_TIME_MS:
        raise BacktestError(f"max_time_ms must be less than 5 minutes (in ms: {MAX_TIME_MS})")
    fv = body.get("filter_version")
    if fv is not None and not isinstance(fv, str):
        raise BacktestError("filter_version must be a string")
    return {"filter_version": fv, "object_ids": object_ids, "start_jd": start_jd, "end_jd": end_jd,
            "max_time_ms": max_time_ms}


def selection(survey, object_ids=None, start_jd=None, end_jd=None) -> dict:
    """The archive query selecting the alerts of a backtest."""
    q: dict = {}
    if object_ids is not None:
        q[object_id_field(survey)] = {"$in": list(object_ids)}
    if start_jd is not None:
        q["candidate.jd"] = {"$gte": start_jd, "$lte": end_jd}
    return q


def pick_version(filter_doc: dict, fid: str | None) -> dict:
    """The version a test runs: ``fid`` if given, else the LAST one (Kowalski: not active_fid)."""
    fv = filter_doc.get("fv") or []
    if not fv:
        raise BacktestError(f"Filter id {filter_doc.get('filter_id')} has no versions")
    if fid is None:
        return fv[-1]
    for v in fv:
        if v.get("fid") == fid:
            return v
    raise BacktestError(f"Filter version {fid} not found")


# --- evaluation ---------------------------------------------------------------------------------

def evaluate_chunk(pipeline, alerts: list, aux_by_id: dict, permissions, survey,
                   past_only: bool = True, stages: bool = False) -> tuple[int, list, int, str | None, list | None]:
    """(alerts seen, outputs, errors, first error, stage counts) of a pipeline over alerts (pure;
    runs on Dask workers). With ``stages`` the pipeline runs one stage at a time and the stage
    counts are the alerts with documents remaining after stages 1..n (the last is the pass count;
    each equals the pass count of that prefix run alone); else they are None."""
    compiled = compile_staged(pipeline) if stages else compile_pipeline(pipeline)
    counts = [0] * compiled.n_stages if stages else None
    spec = upstream_spec(survey)
    oid = spec.object_id
    outputs, errors, first = [], 0, None
    for a in alerts:
        inp = filter_input(a, aux_by_id.get(a.get(oid)), permissions, spec, past_only=past_only)
        if inp is None:
            continue
        alive: list = []
        try:
            out = compiled.passes(inp, alive) if stages else compiled.passes(inp)
        except Exception as exc:  # noqa: BLE001 - a failing alert is counted, the others go on
            errors += 1
            first = first or f"candid {a.get('candid')}: {exc}"
            out = None
        for k, remains in enumerate(alive):
            counts[k] += remains
        if out is not None:
            outputs.append(out)
    return len(alerts), outputs, errors, first, counts


def add_stage_counts(total: list | None, counts: list | None) -> list | None:
    """Stage counts of two parts of a backtest, summed."""
    if counts is None:
        return total
    return list(counts) if total is None else [a + b for a, b in zip(total, counts)]


def run(chunks: Iterable[tuple[list, dict]], pipeline, permissions, survey, *, past_only: bool = True,
        client=None, max_time_s: float | None = None, progress: Callable[[Summary], Any] | None = None,
        keep_outputs: bool = True) -> Summary:
    """Evaluate ``pipeline`` over ``chunks`` of (alerts, aux by object id). With a Dask ``client``
    chunks are evaluated on the cluster (a few in flight). Raises BacktestError past ``max_time_s``."""
    text = pipeline if isinstance(pipeline, str) else None
    compile_pipeline(pipeline)  # compile errors surface before any work
    summary = Summary()
    t0 = time.perf_counter()
    perms = list(permissions)
    survey = upstream_spec(survey)

    def add(result):
        n, outs, errs, first, _ = result
        summary.alerts += n
        summary.passed += len(outs)
        summary.errors += errs
        summary.first_error = summary.first_error or first
        if keep_outputs:
            summary.outputs.extend(outs)
        summary.seconds = time.perf_counter() - t0
        if progress is not None:
            progress(summary)
        if max_time_s is not None and summary.seconds > max_time_s:
            raise BacktestError(f"filter test exceeded max_time_ms ({max_time_s * 1000:.0f} ms) after "
                                f"{summary.alerts} alerts: narrow the selection or raise max_time_ms")

    if client is None:
        for alerts, aux in chunks:
            add(evaluate_chunk(text or pipeline, alerts, aux, perms, survey, past_only))
    else:
        from dask.distributed import as_completed

        futures = as_completed()
        inflight = 0
        for alerts, aux in chunks:
            futures.add(client.submit(evaluate_chunk, text or pipeline, alerts, aux, perms, survey, past_only,
                                      pure=False))
            inflight += 1
            if inflight >= 4:
                add(next(futures).result())
                inflight -= 1
        for fut in futures:
            add(fut.result())
    summary.seconds = time.perf_counter() - t0
    return summary


def archive_chunks(config, survey: str, query: dict, chunk_size: int = 500, limit: int | None = None,
                   newest_first: bool = False):
    """(alerts, aux by object id) chunks of archived alerts matching ``query`` (sync; CLI/broker)."""
    from kowalski import db

    spec = get_survey(survey, config).upstream
    yield from db.alerts_with_aux(config, survey, query, projection=cutout_projection(spec),
                                  object_id=spec.object_id, chunk_size=chunk_size, limit=limit,
                                  newest_first=newest_first)


def backtest(config, filter_doc: dict, *, fid: str | None = None, object_ids=None, start_jd=None, end_jd=None,
             client=None, progress=None, max_time_s=None, keep_outputs=True, chunk_size=500) -> tuple[dict, Summary]:
    """Run one version of a stored filter over the archive. Returns (version, summary)."""
    survey = survey_of_catalog(config, filter_doc["catalog"])
    version = pick_version(filter_doc, fid)
    spec = get_survey(survey, config).upstream
    q = selection(spec, object_ids, start_jd, end_jd)
    summary = run(archive_chunks(config, survey, q, chunk_size), version["pipeline"], filter_doc.get("permissions", []),
                  spec, client=client, progress=progress, max_time_s=max_time_s, keep_outputs=keep_outputs)
    return version, summary
