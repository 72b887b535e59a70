"""The filter editor's API calls and tables, without widgets: the filters of the user's groups,
their versions and diffs, and a backtest's stages and passing alerts (``POST
/api/filters/<id>/test``, whose ``summary.stage_counts`` are the alerts remaining after each stage)."""

from __future__ import annotations

import difflib
import json
import math
from urllib.parse import quote

import pandas as pd

from dashboards.search import InputError, parse_time
from dashboards.session import object_link
from kowalski.client import KowalskiError

PAGE = 200  # filters per GET /api/filters page


def all_filters(client) -> list[dict]:
    """Every filter the user may manage (their groups'; the admin's: all), all pages of the list."""
    out: list[dict] = []
    offset = 0
    while True:
        answer = client.request("GET", f"/api/filters?offset={offset}&limit={PAGE}")
        out += answer.get("data") or []
        nxt = (answer.get("_pagination") or {}).get("next")
        if not nxt:
            return out
        offset = int(nxt["offset"])


def my_groups(client, user: str, filters: list[dict]) -> list[int]:
    """The groups whose filters the user may create: their own (the API answers a user's own
    groups), and those of the filters they see."""
    try:
        groups = client.request("GET", f"/api/users/{quote(user, safe='')}/groups")["data"] or []
    except KowalskiError:
        groups = []
    return sorted({int(g) for g in groups} | {int(f["group_id"]) for f in filters if f.get("group_id") is not None})


def label(f: dict) -> str:
    state = "active" if f.get("active") else "inactive"
    return f"#{f['filter_id']} · group {f.get('group_id')} · {f.get('catalog')} · {state}"


def stages_of(text: str) -> list[dict]:
    """The stages of a stored pipeline (a JSON string)."""
    stages = json.loads(text) if isinstance(text, str) else text
    return stages if isinstance(stages, list) else []


def pretty(text: str) -> str:
    """A stored pipeline, one stage per block, for the editor."""
    try:
        return json.dumps(stages_of(text), indent=2)
    except ValueError:
        return str(text)


def versions_frame(doc: dict) -> pd.DataFrame:
    rows = [{"fid": v.get("fid"), "created": str(v.get("created_at", ""))[:19],
             "stages": len(stages_of(v.get("pipeline", "[]"))),
             "state": ("active" if doc.get("active") else "current (filter inactive)")
             if v.get("fid") == doc.get("active_fid") else ""}
            for v in reversed(doc.get("fv") or [])]
    return pd.DataFrame(rows, columns=["fid", "created", "stages", "state"])


def version_diff(doc: dict, fid: str) -> str:
    """The unified diff of version ``fid`` against the version saved before it ('' for the first)."""
    fv = doc.get("fv") or []
    i = next((k for k, v in enumerate(fv) if v.get("fid") == fid), None)
    if not i:
        return ""
    before, after = pretty(fv[i - 1]["pipeline"]).splitlines(), pretty(fv[i]["pipeline"]).splitlines()
    return "\n".join(difflib.unified_diff(before, after, fv[i - 1]["fid"], fid, lineterm=""))


def parse_permissions(text: str) -> list[int]:
    try:
        out = [int(p) for p in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"permissions {text!r}: program ids as integers, e.g. '1, 2'") from None
    if not out:
        raise InputError("permissions: give at least one program id, e.g. '1'")
    return out


def backtest_body(start: str, end: str, object_ids: str, fid: str | None) -> dict:
    """The ``/test`` request of the backtest form (a JD or a date each; optional object ids)."""
    body: dict = {}
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if (t0 is None) != (t1 is None):
        raise InputError("give both ends of the range (JD or date), or neither with object ids")
    if t0 is not None:
        if t1 < t0:
            raise InputError("the end of the range is before its start")
        body.update(start_date=t0, end_date=t1)
    ids = [o for o in object_ids.replace(",", " ").split() if o]
    if ids:
        body["object_ids"] = ids
    if not body:
        raise InputError("give a range (JD or date) or object ids")
    if fid:
        body["filter_version"] = fid
    return body


def stages_frame(pipeline_text: str, summary: dict) -> pd.DataFrame:
    """One row per stage: its operator, the alerts remaining after it, and their share."""
    stages = stages_of(pipeline_text)
    counts = summary.get("stage_counts") or []
    total = int(summary.get("alerts") or 0)
    rows, before = [], total
    for k, (stage, n) in enumerate(zip(stages, counts), 1):
        op = next(iter(stage), "?")
        rows.append({"stage": k, "operator": op, "spec": json.dumps(stage[op])[:80] if op in stage else "",
                     "remaining": int(n), "dropped": before - int(n),
                     "share": f"{n / total:.1%}" if total else "–"})
        before = int(n)
    return pd.DataFrame(rows, columns=["stage", "operator", "spec", "remaining", "dropped", "share"])


def records(frame: pd.DataFrame) -> list[dict]:
    """A backtest's outputs (``Kowalski.backtest``'s frame) as documents, without the gaps."""
    return [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in frame.to_dict("records")]


def passing_frame(outputs: list[dict], survey: str) -> pd.DataFrame:
    """The passing alerts, with a link to the object page when the output keeps the object id."""
    rows = []
    for o in outputs:
        oid = o.get("objectId") or o.get("objectid")
        rows.append({"object": object_link(survey, oid) if oid else "", "candid": str(o.get("candid", "")),
                     "output": json.dumps({k: v for k, v in o.items() if k not in ("objectId", "candid")},
                                          default=str)[:200]})
    return pd.DataFrame(rows, columns=["object", "candid", "output"])


def passing_candids(client, filter_id: int, start: str, end: str, object_id: str) -> tuple[list[int], dict]:
    """(candids, summary) of the alerts that pass filter ``filter_id``'s active version over the
    search's range or object: the API's ``/test`` run on the archive, so any range can be asked."""
    body = backtest_body(start, end, object_id, None)
    answer = client.request("POST", f"/api/filters/{int(filter_id)}/test", body)
    outputs, summary = answer.get("data") or [], answer.get("summary") or {}
    candids = [int(o["candid"]) for o in outputs if isinstance(o.get("candid"), int)]
    if outputs and not candids:
        raise InputError(f"filter #{filter_id}'s outputs do not keep the alerts' candid: "
                         "add candid to its last $project to search by it")
    return candids, summary
