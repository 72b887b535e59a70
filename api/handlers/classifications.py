"""``/api/classifications/{survey}``: human labels and ML scores of alerts (authenticated).

PUT ``{"<candid>": {"human_labels": {"Ia": 0.8} | ["Ia"] | "Ia,Ib", "ml_scores": {...}}}`` adds or
updates; DELETE ``{"<candid>": {"human_labels": ["Ia"], "ml_scores": [...]}}`` removes labels;
GET ``/{candid}`` reads them. Label names and values follow ``kowalski.labels`` (1–64 characters,
no '.', no leading '$'; values from 0 to 1). Documents: ``{_id: candid, objectId, programid, human_labels,
ml_scores}`` in ``<PREFIX>_alerts_classifications``; the alert's program id is copied in so the
collection obeys the same data rights as the alerts (a user only labels and reads alerts they see).
"""

from __future__ import annotations

import time


from api.base import APIError, BaseHandler, authenticated
from api.rights import Rights
from kowalski import db as kdb
from kowalski.db import UpdateOne
from kowalski.labels import name_problem, value_problem
from kowalski.repositories import Alerts
from kowalski.surveys import get_survey

KINDS = ("human_labels", "ml_scores")
MAX_ALERTS = 10000


def _label(name) -> str:
    problem = name_problem(name)
    if problem:
        raise APIError(400, f"bad label {name!r}: {problem}")
    return name


def _score(value) -> float:
    problem = value_problem(value)
    if problem:
        raise APIError(400, f"bad value {value!r}: {problem}")
    return float(value)


def _labels_to_set(value) -> dict[str, float]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return {_label(v): 1.0 for v in value}
    if isinstance(value, dict):
        return {_label(k): _score(v) for k, v in value.items()}
    raise APIError(400, "labels must be an object {label: value}, a list of labels or a comma-separated string")


def _labels_to_unset(value) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, dict):
        value = list(value)
    if not isinstance(value, list):
        raise APIError(400, "labels to delete must be a list of labels")
    return [_label(v) for v in value]


def _candid(key) -> int:
    if not isinstance(key, str) or not key.isdigit() or len(key) > 19 or int(key) >= 2**63:
        raise APIError(400, f"keys must be alert candids (positive 64-bit integers), not {key!r}")
    return int(key)


class _ClassificationsBase(BaseHandler):
    def _survey(self, survey: str) -> str:
        survey = survey.lower()
        if survey not in self.config["surveys"]:
            raise APIError(400, f"survey {survey} not in [{', '.join(self.config['surveys'])}]")
        return survey

    def _parse(self, parse_value) -> dict[int, dict]:
        body = self.json_object()
        if not body:
            raise APIError(400, 'empty request: expected {"<candid>": {"human_labels": ..., "ml_scores": ...}}')
        if len(body) > MAX_ALERTS:
            raise APIError(400, f"too many alerts in one request: {len(body)} > {MAX_ALERTS}")
        out = {}
        for key, spec in body.items():
            candid = _candid(key)
            if not isinstance(spec, dict) or not spec or not set(spec) <= set(KINDS):
                raise APIError(400, f"{key}: expected an object with human_labels and/or ml_scores")
            out[candid] = {kind: parse_value(v) for kind, v in spec.items()}
        return out

    async def _visible_alerts(self, survey: str, candids: list[int]) -> dict[int, dict]:
        rights = Rights(self.config, self.current_user, self.is_admin)
        coll = kdb.alerts_collection(self.config, survey)
        definition = get_survey(survey, self.config)
        field = definition.programid_field
        projection = {"_id": 0, "candid": 1, definition.object_id: 1}
        if field:
            projection[field] = 1
        t0 = time.perf_counter()
        docs = await Alerts(self.db, self.config, survey).find(rights.restrict_filter(coll, {"candid": {"$in": candids}}),
                                                             projection)
        self.db_seconds += time.perf_counter() - t0
        found = {}
        oid_field = definition.object_id
        for d in docs:
            pid = d
            for part in (field or "").split("."):
                pid = pid.get(part) if isinstance(pid, dict) and part else None
            found[d["candid"]] = {"objectId": d.get(oid_field), "programid": pid}
        if len(found) != len(set(candids)):
            raise APIError(400, f"not all alerts found in {survey} collection")
        return found



class ClassificationsHandler(_ClassificationsBase):
    @authenticated
    async def put(self, survey: str):
        """Add or update classifications."""
        survey = self._survey(survey)
        todo = self._parse(_labels_to_set)
        alerts = await self._visible_alerts(survey, list(todo))
        ops = []
        for candid, spec in todo.items():
            update = {"objectId": alerts[candid]["objectId"]}
            if alerts[candid]["programid"] is not None:
                update["programid"] = alerts[candid]["programid"]
            for kind, labels in spec.items():
                for label, value in labels.items():
                    update[f"{kind}.{label}"] = value
            ops.append(UpdateOne({"_id": candid}, {"$set": update}, upsert=True))
        t0 = time.perf_counter()
        await Alerts(self.db, self.config, survey).classify(ops)
        self.db_seconds += time.perf_counter() - t0
        self.success(f"added classifications for {survey} alerts")

    @authenticated
    async def delete(self, survey: str):
        """Remove classification labels."""
        survey = self._survey(survey)
        todo = self._parse(_labels_to_unset)
        await self._visible_alerts(survey, list(todo))
        ops = []
        for candid, spec in todo.items():
            unset = {f"{kind}.{label}": "" for kind, labels in spec.items() for label in labels}
            if unset:
                ops.append(UpdateOne({"_id": candid}, {"$unset": unset}))
        if ops:
            t0 = time.perf_counter()
            await Alerts(self.db, self.config, survey).classify(ops)
            self.db_seconds += time.perf_counter() - t0
        self.success(f"deleted classifications for {survey} alerts")


class ClassificationHandler(_ClassificationsBase):
    @authenticated
    async def get(self, survey: str, candid: str):
        """The classifications of one alert."""
        survey = self._survey(survey)
        cid = _candid(candid)
        coll = kdb.classifications_collection(self.config, survey)
        rights = Rights(self.config, self.current_user, self.is_admin)
        t0 = time.perf_counter()
        doc = await Alerts(self.db, self.config, survey).classification(rights.restrict_filter(coll, {"_id": cid}))
        self.db_seconds += time.perf_counter() - t0
        if doc is None:
            raise APIError(404, f"no classifications for {survey} alert {candid}")
        data = {"candid": doc["_id"], "objectId": doc.get("objectId"), "human_labels": doc.get("human_labels", {})}
        if "ml_scores" in doc:
            data["ml_scores"] = doc["ml_scores"]
        self.success(f"retrieved classifications for {survey} alert {candid}", data)


default_handlers = [
    (r"/api/classifications/([^/]+)/?", ClassificationsHandler),
    (r"/api/classifications/([^/]+)/([^/]+)/?", ClassificationHandler),
]
