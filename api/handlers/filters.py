"""``/api/filters``: versioned user filters, Kowalski-compatible (kowalski.md §1.5), plus groups.

A filter (collection ``filters``) is ``{filter_id, group_id, catalog, permissions, active,
autosave, auto_followup, update_annotations, active_fid, fv: [{fid, pipeline (JSON string),
created_at}], created_at, last_modified}``.  Saving a version compiles it with the broker's filter
engine (unsupported operators are refused by name) and dry-runs it on the latest archived alert.

Beyond Kowalski:

* filters belong to a group (``group_id``); users listed as members of that group (the ``groups``
  list on their user document, managed by the admin with ``PUT /api/users/{username}/groups``)
  may create, read, change, test and remove its filters; the admin may manage all of them;
* activation (a new active version, ``active: true``, a new ``active_fid`` of an active filter) is
  refused when the version passes more than ``filters.flood_guard_share`` of the
  ``filters.flood_guard_sample`` most recent archived alerts of the catalog (BOOM's flood guard).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import string
import time

from bson import json_util

from api.base import APIError, BaseHandler, admin_only, authenticated
from api.rights import Rights
from mql import FilterCompileError, FilterRuntimeError, compile_pipeline
from kowalski.filters.backtest import (
    BacktestError, add_stage_counts, check_test_request, cutout_projection, evaluate_chunk, object_id_field,
    pick_version, selection, survey_of_catalog,
)
from kowalski.db import DuplicateKeyError
from kowalski.filters.inputs import UpstreamSpec, filter_input
from kowalski.repositories import Alerts, Filters, Users
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.api.filters")

FORBIDDEN_STAGES = {"$lookup", "$unionWith", "$out", "$merge"}
AUTOSAVE_KEYS = {"active": bool, "comment": str, "ignore_group_ids": list, "pipeline": (list, str), "saver_id": int}
AUTO_FOLLOWUP_KEYS = {"active": bool, "comment": str, "pipeline": (list, str), "allocation_id": (str, int),
                      "payload": dict, "target_group_ids": list, "ignore_allocation_ids": list,
                      "not_if_tns_reported": (int, float), "radius": (int, float), "validity_days": int,
                      "priority_order": str, "implements_update": bool}
POST_KEYS = {"group_id", "filter_id", "catalog", "permissions", "pipeline", "active", "autosave", "auto_followup",
             "update_annotations"}
PATCH_KEYS = {"filter_id", "active", "active_fid", "autosave", "auto_followup", "update_annotations"}
FID_ALPHABET = string.ascii_lowercase + string.digits


def utcnow() -> dt.datetime:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON dates hold milliseconds


def new_fid() -> str:
    return "".join(secrets.choice(FID_ALPHABET) for _ in range(6))


def _int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise APIError(400, f"{name} must be an integer >= {minimum}")
    return value


def _bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise APIError(400, f"{name} must be true or false")
    return value


def path_filter_id(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise APIError(400, f"filter id must be an integer, not {text[:40]!r}") from None
    if n < 1:
        raise APIError(400, "filter id must be an integer >= 1")
    return n


def pipeline_text(pipeline, what: str = "pipeline") -> str:
    """A pipeline (list or JSON string) checked like Kowalski's FilterVersion and by the engine;
    returns the stored form: a JSON string with json.dumps spacing."""
    if isinstance(pipeline, str):
        try:
            stages = json_util.loads(pipeline)
        except Exception as exc:  # noqa: BLE001
            raise APIError(400, f"{what} is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
        text = pipeline
    elif isinstance(pipeline, list):
        stages = pipeline
        text = json_util.dumps(pipeline)
    else:
        raise APIError(400, f"{what} must be a list of stages (or its JSON string)")
    if not isinstance(stages, list) or len(stages) < 1:
        raise APIError(400, f"ValidationError: {what} must contain at least one stage")
    if not all(isinstance(s, dict) for s in stages):
        raise APIError(400, f"ValidationError: every stage of {what} must be an object")
    used = {k for s in stages for k in s} & FORBIDDEN_STAGES
    if used:
        raise APIError(400, f"ValidationError: {what} uses forbidden stages: {used}")
    try:
        compile_pipeline(text)
    except FilterCompileError as exc:
        raise APIError(400, f"{what} is invalid: {exc}") from None
    return text


class _FiltersBase(BaseHandler):
    @property
    def filters(self):
        return Filters(self.db, self.config)

    @property
    def fconfig(self) -> dict:
        return self.config.get("filters") or {}

    def may_manage(self, group_id) -> bool:
        if self.is_admin:
            return True
        groups = self.current_user.get("groups") or []
        return group_id in groups

    def check_group(self, group_id) -> None:
        if not self.may_manage(group_id):
            raise APIError(403, f"Forbidden: filters of group {group_id} are managed by its members; "
                                f"you are not a member of group {group_id}")

    def visible_programids(self, catalog: str) -> list[int] | None:
        """The program ids of ``catalog`` this user may see (None: all, e.g. the admin)."""
        return Rights(self.config, self.current_user, self.is_admin).programids(catalog)

    def check_permissions(self, catalog: str, permissions: list) -> None:
        allowed = self.visible_programids(catalog)
        if allowed is not None and not set(permissions) <= set(allowed):
            raise APIError(403, f"Forbidden: permissions {sorted(set(permissions) - set(allowed))} are program ids "
                                f"of {catalog} you may not see (yours: {allowed}); the admin grants them")

    async def load(self, filter_id: int) -> dict:
        doc = await self.filters.get(filter_id)
        if doc is None:
            raise APIError(400, f"Filter id {filter_id} not found")
        self.check_group(doc.get("group_id"))
        return doc

    def survey(self, catalog: str) -> UpstreamSpec:
        """The filters' view of the survey whose alert collection is ``catalog``."""
        try:
            return get_survey(survey_of_catalog(self.config, catalog), self.config).upstream
        except BacktestError as exc:
            raise APIError(400, str(exc)) from None

    # --- archive access ---------------------------------------------------------------------
    async def _alerts_with_aux(self, survey: UpstreamSpec, query: dict, limit: int | None = None,
                               newest_first: bool = False) -> tuple[list, dict]:
        archive = Alerts(self.db, self.config, survey.survey)
        alerts = await archive.find(query, cutout_projection(survey), newest_first=newest_first, limit=int(limit or 0))
        oid = object_id_field(survey)
        ids = {a.get(oid) for a in alerts if a.get(oid) is not None}
        aux = {x["_id"]: x for x in await archive.aux_of(ids)} if ids else {}
        return alerts, aux

    async def dry_run(self, catalog: str, text: str, permissions, what: str, filter_id) -> str | None:
        """Run the pipeline on the latest archived alert (Kowalski's dry run). Returns a warning when
        the catalog is empty; raises 400 on a runtime error."""
        survey = self.survey(catalog)
        alerts, aux = await self._alerts_with_aux(survey, {}, limit=1, newest_first=True)
        if not alerts:
            return (f"WARNING: No documents in {catalog} collection, cannot properly test pipeline for filter id "
                    f"{filter_id}")
        inp = filter_input(alerts[0], aux.get(alerts[0].get(object_id_field(survey))), permissions, survey)
        if inp is not None:
            try:
                compile_pipeline(text).passes(inp)
            except FilterRuntimeError as exc:
                raise APIError(400, f"{what} failed on the latest alert (candid {alerts[0].get('candid')}): {exc}")
        return None

    async def flood_guard(self, doc: dict, fid: str) -> None:
        """Refuse to activate a version that passes too many of the most recent archived alerts."""
        share = float(self.fconfig.get("flood_guard_share", 0.05))
        sample = int(self.fconfig.get("flood_guard_sample", 1000))
        if share >= 1 or sample <= 0:
            return
        version = next((v for v in doc.get("fv", []) if v.get("fid") == fid), None)
        if version is None:
            return
        survey = self.survey(doc["catalog"])
        alerts, aux = await self._alerts_with_aux(survey, {}, limit=sample, newest_first=True)
        if not alerts:
            return
        loop = asyncio.get_running_loop()
        n, outs, errors, first, _ = await loop.run_in_executor(
            None, evaluate_chunk, version["pipeline"], alerts, aux, doc.get("permissions", []), survey, False)
        passed = len(outs)
        if passed > share * n:
            log.info("flood guard: filter %s version %s passes %d/%d alerts: activation refused",
                     doc.get("filter_id"), fid, passed, n)
            raise APIError(400, f"activation refused by the flood guard: filter id {doc.get('filter_id')} version "
                                f"{fid} passes {passed} of the {n} most recent {doc['catalog']} alerts "
                                f"({passed / n:.1%}), more than filters.flood_guard_share ({share:.1%}); make it "
                                f"more selective, or save it with \"active\": false")

    # --- autosave / auto_followup -------------------------------------------------------------
    async def check_option(self, attr: str, value, catalog: str, permissions, filter_id, patch: bool):
        """Kowalski's checks of autosave / auto_followup; returns the value to store."""
        prefix = f"Cannot update filter id {filter_id}: " if patch else ""
        if attr == "autosave":
            if isinstance(value, bool):
                return value
            if not isinstance(value, dict):
                raise APIError(400, f"{prefix}autosave must be true, false or an object")
            allowed = AUTOSAVE_KEYS
        else:
            if not isinstance(value, dict):
                raise APIError(400, f"{prefix}auto_followup must be an object")
            if not value:
                return value
            allowed = AUTO_FOLLOWUP_KEYS
        if not set(value) <= set(allowed):
            raise APIError(400, f"Cannot test {attr} pipeline: invalid keys "
                                f"{sorted(set(value) - set(allowed))}; allowed: {sorted(allowed)}")
        for k, v in value.items():
            t = allowed[k]
            if (isinstance(v, bool) and t not in (bool,)) or not isinstance(v, t):
                raise APIError(400, f"{prefix}{attr}.{k} has the wrong type ({type(v).__name__})")
        out = dict(value)
        if attr == "auto_followup":
            if "pipeline" not in value:
                raise APIError(400, f"{prefix}Cannot test auto_followup pipeline: auto_followup needs a pipeline")
            order = value.get("priority_order")
            if order is not None and order not in ("asc", "desc"):
                raise APIError(400, f"{prefix}auto_followup.priority_order must be 'asc' or 'desc'")
            if "allocation_id" in value and order is not None:
                try:
                    alloc = int(value["allocation_id"])
                except ValueError:
                    raise APIError(400, f"{prefix}auto_followup.allocation_id must be an integer id") from None
                for other in await self.filters.others_with_followup(filter_id):
                    af = other.get("auto_followup") or {}
                    try:
                        same = int(af.get("allocation_id")) == alloc
                    except (TypeError, ValueError):
                        same = False
                    if same and af.get("priority_order") not in (None, order):
                        if patch:
                            raise APIError(400, f"Cannot update filter id {filter_id}: auto_followup, filters with "
                                                "the same allocation have priority_order set to a different value, "
                                                "which is unexpected")
                        raise APIError(400, "Cannot add new filter with auto_followup: existing filters with the same "
                                            "allocation have priority_order set to a different value, which is "
                                            "unexpected")
        if "pipeline" in value:
            what = f"{attr} pipeline"
            try:
                text = pipeline_text(value["pipeline"], what)
            except APIError as exc:
                raise APIError(400, f"{prefix}{exc.message}" if patch else exc.message) from None
            warning = await self.dry_run(catalog, text, permissions, what, filter_id)
            if warning and not patch:
                raise APIError(400, f"Cannot test {attr} pipeline: no documents in {catalog} collection")
            out["pipeline"] = text
        return out


class FiltersHandler(_FiltersBase):
    @authenticated
    async def get(self):
        """The filters the user may manage (all for the admin)."""
        q = {} if self.is_admin else {"group_id": {"$in": list(self.current_user.get("groups") or [])}}
        offset, limit = self.page_args()
        total = await self.filters.count(q)
        docs = await self.filters.page(q, offset, limit)
        nxt = offset + limit if offset + limit < total else None
        self.success(f"Retrieved {len(docs)} filters", docs, _pagination={
            "offset": offset, "limit": limit, "total": total,
            "next": None if nxt is None else {"offset": nxt, "limit": limit,
                                              "url": f"{self.request.path}?offset={nxt}&limit={limit}"}})

    @authenticated
    async def post(self):
        """Save a new filter version (creating the filter on its first version)."""
        body = self.json_object()
        unknown = set(body) - POST_KEYS
        if unknown:
            raise APIError(400, f"unknown keys {sorted(unknown)}; a filter has {sorted(POST_KEYS)}")
        for k in ("group_id", "filter_id", "catalog", "pipeline"):
            if body.get(k) is None:
                raise APIError(400, f"{k} is required")
        group_id = _int(body["group_id"], "group_id")
        filter_id = _int(body["filter_id"], "filter_id")
        catalog = body["catalog"]
        if not isinstance(catalog, str):
            raise APIError(400, "catalog must be a string")
        self.survey(catalog)
        permissions = body.get("permissions", [])
        if not isinstance(permissions, list) or not all(isinstance(p, int) and not isinstance(p, bool)
                                                        for p in permissions):
            raise APIError(400, "permissions must be a list of integer program ids")
        self.check_group(group_id)
        self.check_permissions(catalog, permissions)
        active = _bool(body.get("active", True), "active")
        update_annotations = _bool(body.get("update_annotations", False), "update_annotations")
        autosave = body.get("autosave", False)
        auto_followup = body.get("auto_followup", {})
        if autosave is None:
            autosave = False
        if auto_followup is None:
            auto_followup = {}
        if auto_followup and (autosave is False or (isinstance(autosave, dict) and not autosave.get("active"))):
            raise APIError(400, "Cannot setup auto_followup without autosave enabled")
        text = pipeline_text(body["pipeline"])
        message = f"pipeline test for filter id {filter_id} successful"
        warning = await self.dry_run(catalog, text, permissions, "pipeline", filter_id)
        if warning:
            message = warning
        autosave = await self.check_option("autosave", autosave, catalog, permissions, filter_id, False)
        auto_followup = await self.check_option("auto_followup", auto_followup, catalog, permissions, filter_id, False)

        existing = await self.filters.get(filter_id)
        if existing is not None and existing.get("group_id") != group_id:
            raise APIError(400, f"filter id {filter_id} already exists in group {existing.get('group_id')}")
        now = utcnow()
        version = {"fid": new_fid(), "pipeline": text, "created_at": now}
        if existing is not None:
            self.check_group(existing.get("group_id"))
            candidate = {**existing, "fv": existing.get("fv", []) + [version]}
            if existing.get("active", True):
                await self.flood_guard(candidate, version["fid"])
            await self.filters.update(existing["_id"], {"active_fid": version["fid"], "last_modified": now},
                                      push={"fv": version})
        else:
            doc = {"filter_id": filter_id, "group_id": group_id, "catalog": catalog, "permissions": permissions,
                   "active": active, "autosave": autosave, "auto_followup": auto_followup,
                   "update_annotations": update_annotations, "active_fid": version["fid"], "fv": [version],
                   "created_at": now, "last_modified": now}
            if active:
                await self.flood_guard(doc, version["fid"])
            try:
                await self.filters.add(doc)
            except DuplicateKeyError:
                raise APIError(409, f"filter id {filter_id} was created concurrently; retry") from None
        log.info("filter %d (group %d): saved version %s by %s", filter_id, group_id, version["fid"], self.username)
        self.success(f"{message}\nsaved new filter version: {version['fid']}", version)

    @authenticated
    async def patch(self):
        """Change active, active_fid, autosave, auto_followup, update_annotations."""
        body = self.json_object()
        unknown = set(body) - PATCH_KEYS
        if unknown:
            raise APIError(400, f"unknown keys {sorted(unknown)}; PATCH accepts {sorted(PATCH_KEYS)}")
        if body.get("filter_id") is None:
            raise APIError(400, "filter_id is required")
        filter_id = _int(body["filter_id"], "filter_id")
        doc = await self.load(filter_id)
        updates = {k: v for k, v in body.items() if k != "filter_id" and v is not None}
        if not updates:
            raise APIError(400, f"nothing to update for filter id {filter_id}: give one of "
                                f"{sorted(PATCH_KEYS - {'filter_id'})}")
        if "active" in updates:
            _bool(updates["active"], "active")
        if "update_annotations" in updates:
            _bool(updates["update_annotations"], "update_annotations")
        if "active_fid" in updates:
            fid = updates["active_fid"]
            if not isinstance(fid, str) or fid not in {v.get("fid") for v in doc.get("fv", [])}:
                raise APIError(400, f"ValueError: Cannot set active_fid to {fid}: filter version fid not in "
                                    "filter.fv")
        for attr in ("autosave", "auto_followup"):
            if attr in updates:
                updates[attr] = await self.check_option(attr, updates[attr], doc["catalog"],
                                                        doc.get("permissions", []), filter_id, True)
        will_be_active = updates.get("active", doc.get("active", True))
        fid = updates.get("active_fid", doc.get("active_fid"))
        activating = will_be_active and (not doc.get("active", True) or fid != doc.get("active_fid"))
        if activating and fid:
            await self.flood_guard(doc, fid)
        updates["last_modified"] = utcnow()
        await self.filters.update(doc["_id"], updates)
        log.info("filter %d: updated %s by %s", filter_id, sorted(updates), self.username)
        self.success(f"Updated filter id {filter_id}", await self.filters.get_by_key(doc["_id"]))


class FilterHandler(_FiltersBase):
    @authenticated
    async def get(self, filter_id: str):
        n = path_filter_id(filter_id)
        self.success(f"Retrieved filter id {n}", await self.load(n))

    @authenticated
    async def delete(self, filter_id: str):
        n = path_filter_id(filter_id)
        doc = await self.load(n)
        res = await self.filters.remove(doc["_id"])
        if res.deleted_count == 0:
            raise APIError(400, f"Filter id {n} not found")
        log.info("filter %d removed by %s", n, self.username)
        self.success(f"Removed filter id {n}")


async def _evaluate_local(chunks, pipeline, permissions, survey):
    loop = asyncio.get_running_loop()
    out = []
    for alerts, aux in chunks:
        out.append(await loop.run_in_executor(None, evaluate_chunk, pipeline, alerts, aux, permissions, survey, True,
                                              True))
    return out


class _DaskMixin:
    async def dask_client(self):
        """A Dask client when ``filters.dask_scheduler`` is set (one per API process), else None."""
        address = (self.config.get("filters") or {}).get("dask_scheduler")
        if not address:
            return None
        state = self.settings["state"]
        client = getattr(state, "filters_dask", None)
        if client is None or client.status not in ("running", "connecting"):
            from dask.distributed import Client
            try:
                client = await Client(address, asynchronous=True, timeout="5s")
            except (OSError, TimeoutError) as exc:
                log.warning("filters.dask_scheduler %s unreachable (%s): evaluating in the API process", address, exc)
                return None
            state.filters_dask = client
        return client

    async def _evaluate(self, dask, chunks, pipeline, permissions, survey):
        if dask is None:
            return await _evaluate_local(chunks, pipeline, permissions, survey)
        futures = [dask.submit(evaluate_chunk, pipeline, alerts, aux, permissions, survey, True, True, pure=False)
                   for alerts, aux in chunks]
        try:
            return await dask.gather(futures)
        finally:
            for f in futures:
                f.cancel()


class FilterTestHandler(_DaskMixin, _FiltersBase):
    @authenticated
    async def post(self, filter_id: str):
        """Run a version over archived alerts (object ids and/or a JD range) with the broker's engine."""
        n = path_filter_id(filter_id)
        body = self.json_object(required=False)
        try:
            req = check_test_request(body)
        except BacktestError as exc:
            raise APIError(400, str(exc)) from None
        doc = await self.load(n)
        try:
            version = pick_version(doc, req["filter_version"])
        except BacktestError as exc:
            raise APIError(400, str(exc)) from None
        survey = self.survey(doc["catalog"])
        t0 = time.perf_counter()
        deadline = req["max_time_ms"] / 1000
        q = selection(survey, req["object_ids"], req["start_jd"], req["end_jd"])
        permissions = list(doc.get("permissions") or [])
        allowed = self.visible_programids(doc["catalog"])
        if allowed is not None:  # a member sees the outputs only on the program ids they may see
            permissions = [p for p in permissions if p in allowed]
        try:
            alerts, aux = await asyncio.wait_for(self._alerts_with_aux(survey, q), timeout=deadline)
        except asyncio.TimeoutError:
            raise APIError(400, f"failure: reading the alerts exceeded max_time_ms ({req['max_time_ms']})") from None
        outputs: list = []
        errors = 0
        first = None
        stage_counts = None
        step = 200
        chunks = []
        for i in range(0, len(alerts), step):
            part = alerts[i:i + step]
            oid = object_id_field(survey)
            chunks.append((part, {a.get(oid): aux[a.get(oid)] for a in part if a.get(oid) in aux}))
        dask = await self.dask_client()
        try:
            results = await asyncio.wait_for(self._evaluate(dask, chunks, version["pipeline"], permissions, survey),
                                             timeout=max(0.001, deadline - (time.perf_counter() - t0)))
        except asyncio.TimeoutError:
            raise APIError(400, f"failure: filter test exceeded max_time_ms ({req['max_time_ms']}) on "
                                f"{len(alerts)} alerts: narrow the selection or raise max_time_ms") from None
        for _, outs, errs, err, counts in results:
            outputs.extend(outs)
            errors += errs
            first = first or err
            stage_counts = add_stage_counts(stage_counts, counts)
        if stage_counts is None:  # no alert selected: none remains after any stage
            stage_counts = [0] * len(json_util.loads(version["pipeline"]))
        seconds = time.perf_counter() - t0
        summary = {"fid": version["fid"], "alerts": len(alerts), "passed": len(outputs), "dask": dask is not None,
                   "rate": round(len(outputs) / len(alerts), 6) if alerts else 0.0, "errors": errors,
                   "first_error": first, "seconds": round(seconds, 3), "stage_counts": stage_counts}
        log.info("filter %d test of %s: %d/%d passed, %d errors in %.3f s", n, version["fid"], len(outputs),
                 len(alerts), errors, seconds)
        self.success("filter test successful", outputs, summary=summary)


class UserGroupsHandler(BaseHandler):
    """The groups a user belongs to (whose filters they may manage)."""

    @property
    def users(self):
        return Users(self.db, self.config)

    @authenticated
    async def get(self, username: str):
        """A user's own groups (which filters they may manage and create), or any user's for the admin."""
        if username != self.username and not self.is_admin:
            raise APIError(403, "Forbidden: you may read your own groups only")
        doc = await self.users.get(username, {"groups": 1})
        if doc is None:
            raise APIError(400, f"user {username} not found")
        self.success(f"groups of user {username}", doc.get("groups", []))

    @admin_only
    async def put(self, username: str):
        body = self.json_object()
        groups = body.get("groups")
        if set(body) != {"groups"} or not isinstance(groups, list) or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in groups):
            raise APIError(400, 'body must be {"groups": [group id, ...]} with integer group ids >= 1')
        res = await self.users.update(username, {"groups": sorted(set(groups))})
        if res.matched_count == 0:
            raise APIError(400, f"user {username} not found")
        self.state.users.forget(username)
        self.success(f"set the groups of user {username}", sorted(set(groups)))


default_handlers = [
    (r"/api/filters/?", FiltersHandler),
    (r"/api/filters/([^/]+)/test/?", FilterTestHandler),
    (r"/api/filters/([^/]+)/?", FilterHandler),
    (r"/api/users/([^/]+)/groups/?", UserGroupsHandler),
]
