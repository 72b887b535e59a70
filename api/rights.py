"""Data rights: who may see which alerts, history points and collections.

Every query a non-admin sends is rewritten here before it reaches the database:

* alert collections (``<PREFIX>_alerts``) and classification collections are restricted to the
  program ids the user may see (``candidate.programid`` / ``programid`` ∈ allowed);
* aux collections (``<PREFIX>_alerts_aux``) keep their documents, but their history arrays
  (``prv_candidates``, ``fp_hists``) are filtered point by point on ``programid``, and any filter,
  sort or projection that could look into those arrays runs only after that filtering;
* the same holds inside aggregation pipelines, including ``$lookup``, ``$graphLookup``,
  ``$unionWith`` and ``$facet`` sub-pipelines, at any depth;
* system collections (``users``, ``filters``, ``queries``, ``skymaps``) are invisible to non-admins;
* ``$where``, ``$function``, ``$accumulator``, ``$out`` and ``$merge`` are refused anywhere in a
  request, for everyone.

What each user may see: the survey's public program ids (its definition's ``public_programids``,
config ``surveys.<survey>.public_programids``) plus those granted in the user's ``permissions``
document (``{survey: [programids]}``). Which fields carry program ids, and which history arrays are
filtered, is the survey definition's (``kowalski.surveys``), the same the filters' input uses. The
admin (``admin.username``) sees everything.
"""

from __future__ import annotations

from typing import Any, Iterable

from bson import json_util

from api.base import APIError
from kowalski.config import Config
from kowalski.db import system_collections
from kowalski.surveys import Survey, get_survey

FORBIDDEN_OPERATORS = frozenset({"$where", "$function", "$accumulator", "$out", "$merge"})
MAX_DEPTH = 100

# Stages a non-admin may use. Anything else (``$currentOp``, ``$collStats``, ``$documents``,
# ``$listSessions``, ...) is refused with a clear message; the admin may use every stage the
# database knows except the forbidden ones.
USER_STAGES = frozenset({
    "$addFields", "$bucket", "$bucketAuto", "$count", "$densify", "$facet", "$fill", "$geoNear",
    "$graphLookup", "$group", "$limit", "$lookup", "$match", "$project", "$redact", "$replaceRoot",
    "$replaceWith", "$sample", "$set", "$setWindowFields", "$skip", "$sort", "$sortByCount",
    "$unionWith", "$unset", "$unwind",
})


def check_forbidden(obj: Any, where: str = "request", _depth: int = 0) -> None:
    """Refuse forbidden operators anywhere in ``obj`` (keys at any depth)."""
    if _depth > MAX_DEPTH:
        raise APIError(400, f"{where} is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in FORBIDDEN_OPERATORS:
                raise APIError(400, f"{key} is not allowed in queries (found in {where})")
            if isinstance(value, (dict, list)):
                check_forbidden(value, where, _depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                check_forbidden(value, where, _depth + 1)


def validate_permissions(config: Config, perms: Any) -> dict[str, list[int]]:
    """``{survey: [programid, ...]}`` with configured surveys and integer program ids."""
    if not isinstance(perms, dict):
        raise APIError(400, 'permissions must be an object like {"ztf": [1, 2]}')
    out: dict[str, list[int]] = {}
    for survey, ids in perms.items():
        if survey.lower() not in config["surveys"]:
            raise APIError(400, f"permissions: unknown survey {survey!r}; known: {', '.join(config['surveys'])}")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise APIError(400, f"permissions.{survey} must be a list of integer program ids")
        out[survey.lower()] = sorted(set(ids))
    return out


def is_system_collection(config: Config, name: str) -> bool:
    return name in system_collections(config) or name.startswith("system.")


def _mentions(obj: Any, words: Iterable[str]) -> bool:
    """Whether a filter/stage could look at one of ``words`` (conservative: substring test)."""
    text = json_util.dumps(obj)
    return any(w in text for w in words)


class Rights:
    """What one user may see; rewrites filters and pipelines accordingly."""

    def __init__(self, config: Config, user: dict | None, is_admin: bool):
        self.config = config
        self.is_admin = is_admin
        self.system = system_collections(config)
        # collection name -> (kind, survey definition, allowed ids)
        self.rules: dict[str, tuple[str, Survey, list[int]]] = {}
        granted = (user or {}).get("permissions") or {}
        if is_admin:
            return
        for name in config["surveys"]:
            survey = get_survey(name, config)
            if not survey.has_programids:
                continue
            extra = granted.get(survey.name) if isinstance(granted, dict) else None
            ids = sorted(set(survey.public_programids) | set(i for i in (extra or []) if isinstance(i, int)))
            self.rules[survey.alerts_collection] = ("alerts", survey, ids)
            self.rules[survey.classifications_collection] = ("classifications", survey, ids)
            if survey.restricts_history:
                self.rules[survey.aux_collection] = ("aux", survey, ids)

    # --- collections -------------------------------------------------------------------
    def check_collection(self, name: Any, what: str = "catalog") -> str:
        if not isinstance(name, str) or not name.strip():
            raise APIError(400, f"{what} must be a non-empty string (a collection name)")
        name = name.strip()
        if not self.is_admin and (name in self.system or name.startswith("system.")):
            raise APIError(403, f"Protected collection: {name} is not accessible")
        return name

    def kind(self, coll: str) -> str | None:
        rule = self.rules.get(coll)
        return rule[0] if rule else None

    def programids(self, coll: str) -> list[int] | None:
        rule = self.rules.get(coll)
        return rule[2] if rule else None

    # --- filters -----------------------------------------------------------------------
    def condition(self, coll: str) -> dict | None:
        """The document-level condition for alert/classification collections."""
        rule = self.rules.get(coll)
        if not rule or rule[0] == "aux":
            return None
        field = rule[1].programid_field if rule[0] == "alerts" else "programid"
        # one program id as an equality: the embedded server answers {programid, jd} from the
        # compound index, but plans an $in as a collection scan (a jd-window count: 22 ms -> 2)
        return {field: rule[2][0]} if len(rule[2]) == 1 else {field: {"$in": rule[2]}}

    def restrict_filter(self, coll: str, flt: dict) -> dict:
        """``flt`` AND the collection's condition, keeping the user's keys (and any geo operator)
        at the top level so that indexes are used."""
        cond = self.condition(coll)
        if cond is None:
            return flt
        out = dict(flt)
        (field, spec), = cond.items()
        if field not in out:
            out[field] = spec
        elif isinstance(out.get("$and"), list) or "$and" not in out:
            out["$and"] = [*(out.get("$and") or []), cond]
        else:  # a malformed $and: let the database report it, but never without the condition
            out = {"$and": [flt, cond]}
        return out

    def history_stages(self, coll: str) -> list[dict]:
        """For aux collections: filter every history array point by point."""
        rule = self.rules.get(coll)
        if not rule or rule[0] != "aux":
            return []
        fields = {}
        hf = rule[1].history_programid_field
        for arr in rule[1].history_arrays:
            fields[arr] = {"$cond": [
                {"$isArray": f"${arr}"},
                {"$filter": {"input": f"${arr}", "as": "point", "cond": {"$in": [f"$$point.{hf}", rule[2]]}}},
                "$$REMOVE",
            ]}
        return [{"$addFields": fields}]

    def touches_history(self, coll: str, obj: Any) -> bool:
        """Whether a filter/sort/projection could read an aux history array."""
        rule = self.rules.get(coll)
        if not rule or rule[0] != "aux":
            return False
        return _mentions(obj, [*rule[1].history_arrays, "$expr", "$$ROOT", "$$CURRENT", "$jsonSchema"])

    # --- pipelines ---------------------------------------------------------------------
    def rewrite_pipeline(self, coll: str, pipeline: Any, prefix: bool = True, where: str = "pipeline") -> list:
        if not isinstance(pipeline, list):
            raise APIError(400, f"{where} must be a list of stages")
        stages = [self._check_stage(s, where) for s in pipeline]
        if self.is_admin:
            return [st for s in stages for st in self._rewrite_stage(coll, s, where)]
        out: list[dict] = []
        kind = self.kind(coll) if prefix else None
        if kind in ("alerts", "classifications"):
            if stages and next(iter(stages[0])) == "$match":
                out.append({"$match": self.restrict_filter(coll, self._as_dict(stages[0]["$match"], "$match"))})
                stages = stages[1:]
            elif stages and next(iter(stages[0])) == "$geoNear":
                geo = self._as_dict(stages[0]["$geoNear"], "$geoNear")
                out.append({"$geoNear": {**geo, "query": self.restrict_filter(coll, self._as_dict(geo.get("query", {}), "$geoNear.query"))}})
                stages = stages[1:]
            else:
                out.append({"$match": self.condition(coll)})
        elif kind == "aux":
            # a leading $match that cannot see history may run first (and use indexes)
            if stages and next(iter(stages[0])) == "$match" and not self.touches_history(coll, stages[0]):
                out.extend(self._rewrite_stage(coll, stages[0], where))
                stages = stages[1:]
            elif stages and next(iter(stages[0])) == "$geoNear" and not self.touches_history(coll, stages[0]):
                out.extend(self._rewrite_stage(coll, stages[0], where))
                stages = stages[1:]
            out.extend(self.history_stages(coll))
        for s in stages:
            out.extend(self._rewrite_stage(coll, s, where))
        return out

    @staticmethod
    def _as_dict(value: Any, what: str) -> dict:
        if not isinstance(value, dict):
            raise APIError(400, f"{what} must be an object")
        return value

    def _check_stage(self, stage: Any, where: str) -> dict:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise APIError(400, f'each stage of {where} must be an object with exactly one key, like {{"$match": {{...}}}}')
        name = next(iter(stage))
        if name in FORBIDDEN_OPERATORS:
            raise APIError(400, f"{name} is not allowed in queries (found in {where})")
        if not self.is_admin and name not in USER_STAGES:
            if not name.startswith("$"):
                raise APIError(400, f"unknown pipeline stage {name!r} in {where}")
            raise APIError(400, f"pipeline stage {name} is not allowed in {where}; "
                                f"allowed: {', '.join(sorted(USER_STAGES))}")
        return stage

    def _rewrite_stage(self, coll: str, stage: dict, where: str) -> list[dict]:
        name, spec = next(iter(stage.items()))
        if name == "$lookup":
            spec = self._as_dict(spec, "$lookup")
            frm = self.check_collection(spec.get("from"), "$lookup.from")
            new = dict(spec)
            new["from"] = frm
            if "pipeline" in spec or self._restricted(frm):
                new["pipeline"] = self.rewrite_pipeline(frm, spec.get("pipeline", []), where=f"$lookup.pipeline of {where}")
            return [{"$lookup": new}]
        if name == "$unionWith":
            if isinstance(spec, str):
                spec = {"coll": spec}
            spec = self._as_dict(spec, "$unionWith")
            other = self.check_collection(spec.get("coll"), "$unionWith.coll")
            new = dict(spec)
            new["coll"] = other
            if "pipeline" in spec or self._restricted(other):
                new["pipeline"] = self.rewrite_pipeline(other, spec.get("pipeline", []), where=f"$unionWith.pipeline of {where}")
            return [{"$unionWith": new}]
        if name == "$graphLookup":
            spec = self._as_dict(spec, "$graphLookup")
            frm = self.check_collection(spec.get("from"), "$graphLookup.from")
            kind = self.kind(frm)
            if kind == "aux":
                raise APIError(400, f"$graphLookup on {frm} is not supported (its history arrays are filtered "
                                    f"by program id): use $lookup")
            new = dict(spec)
            new["from"] = frm
            if kind not in ("alerts", "classifications"):
                return [{"$graphLookup": new}]
            new["restrictSearchWithMatch"] = self.restrict_filter(
                frm, self._as_dict(spec.get("restrictSearchWithMatch", {}), "$graphLookup.restrictSearchWithMatch"))
            as_field = spec.get("as")
            if not isinstance(as_field, str) or not as_field or as_field.startswith("$"):
                raise APIError(400, "$graphLookup.as must be a field name")
            # not every MongoDB-wire server applies restrictSearchWithMatch: filter the result too
            (field, _), = self.condition(frm).items()
            keep = {"$filter": {"input": f"${as_field}", "as": "found",
                                "cond": {"$in": [f"$$found.{field}", self.programids(frm)]}}}
            return [{"$graphLookup": new}, {"$addFields": {as_field: keep}}]
        if name == "$facet":
            spec = self._as_dict(spec, "$facet")
            return [{"$facet": {k: self.rewrite_pipeline(coll, v, prefix=False, where=f"$facet.{k}") for k, v in spec.items()}}]
        return [stage]

    def _restricted(self, coll: str) -> bool:
        return coll in self.rules
