"""Active user filters in the broker: every active filter on every stored alert of a batch.

``FilterRunner(config, survey)``:

* loads the active filters of the survey's catalog (``filters`` collection, ``active: true``,
  version ``active_fid``) and reloads them every ``filters.refresh_s``; each version is compiled
  once (a version that does not compile is recorded on the filter and skipped);
* builds each alert's input as Kowalski's upstream pipeline does (alert without cutouts + its
  object's aux document restricted to the filter's program ids), the aux documents of the batch
  handed over by the store (which has just merged them) or, without them, fetched in ONE query;
* runs every filter on every alert; a failing filter is isolated: its errors are counted on the
  filter document (``error_count``, ``last_error``, ``last_error_at``) and the others go on;
* writes each passing (alert, filter) to the durable outbox ``<PREFIX>_filter_outbox``, one
  document per (candid, filter_id) (``_id`` = ``"<candid>:<filter_id>"``, inserted only once, so a
  re-processed batch does not duplicate anything), with the delivery targets still ``pending``.
  The broker calls :meth:`process` after storing a batch and before committing its offsets.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import bson

from broker.delivery import delivery_targets
from kowalski import db
from kowalski.repositories import Filters, Outbox

from mql import FilterCompileError, compile_pipeline
from kowalski.filters.inputs import filter_input
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.broker.filters")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass
class ActiveFilter:
    filter_id: int
    group_id: int
    fid: str
    permissions: tuple
    compiled: object
    autosave: object = False
    autosave_compiled: object = None
    auto_followup: dict = field(default_factory=dict)
    auto_followup_compiled: object = None
    update_annotations: bool = False


class FilterRunner:
    def __init__(self, config, survey: str):
        self.config = config
        self.survey = survey.lower()
        self.spec = get_survey(self.survey, config).upstream
        self.catalog = self.spec.collection
        fc = config.get("filters") or {}
        self.refresh_s = float(fc.get("refresh_s", 300))
        self.slow_ms = float(fc.get("slow_ms_per_alert", 20))
        self.targets = delivery_targets(config, self.survey)
        self.filters: list[ActiveFilter] = []
        self._loaded_at: float | None = None
        self.stats = {"alerts": 0, "evaluations": 0, "passed": 0, "errors": 0, "outbox_new": 0}
        self._indexed = False
        self.filter_docs = Filters(db.get_db(config), config)
        self.outbox = Outbox(db.get_db(config), config, self.survey)

    # --- filters ----------------------------------------------------------------------------
    def load(self) -> list[ActiveFilter]:
        out = []
        for doc in self.filter_docs.active(self.catalog):
            fid = doc.get("active_fid")
            version = next((v for v in doc.get("fv") or [] if v.get("fid") == fid), None)
            if version is None:
                continue
            try:
                f = ActiveFilter(doc["filter_id"], doc.get("group_id"), fid,
                                 tuple(sorted(int(p) for p in doc.get("permissions") or [])),
                                 compile_pipeline(version["pipeline"]),
                                 autosave=doc.get("autosave", False),
                                 auto_followup=doc.get("auto_followup") or {},
                                 update_annotations=bool(doc.get("update_annotations")))
                if isinstance(f.autosave, dict) and f.autosave.get("pipeline"):
                    f.autosave_compiled = compile_pipeline(f.autosave["pipeline"])
                if f.auto_followup.get("pipeline"):
                    f.auto_followup_compiled = compile_pipeline(f.auto_followup["pipeline"])
            except (FilterCompileError, KeyError, TypeError, ValueError) as exc:
                self._record_errors(doc.get("filter_id"), 1, f"version {fid} does not compile: {exc}")
                continue
            out.append(f)
        self.filters = out
        self._loaded_at = time.monotonic()
        log.info("%s: %d active filters loaded", self.catalog, len(out))
        return out

    def _maybe_refresh(self) -> None:
        if self._loaded_at is None or time.monotonic() - self._loaded_at >= self.refresh_s:
            self.load()

    def _record_errors(self, filter_id, n: int, message: str) -> None:
        log.warning("filter %s: %d error(s): %s", filter_id, n, message)
        self.filter_docs.record_errors(filter_id, n, message)

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, alerts: list[dict], aux: dict | None = None) -> list[dict]:
        """Outbox documents of the (alert, filter) pairs that pass (no writes except error records)."""
        self._maybe_refresh()
        if not self.filters or not alerts:
            return []
        oid_field = self.spec.object_id
        if aux is None:
            aux = db.aux_by_ids(self.config, self.survey, [a.get(oid_field) for a in alerts if a.get(oid_field)])
        now = utcnow()
        passed: list[dict] = []
        errors: dict[int, list] = {}
        inputs: dict[tuple, list] = {}
        slow: dict[int, float] = {}
        for f in self.filters:
            if f.permissions not in inputs:  # shared by the filters of these permissions: not billed to one
                inputs[f.permissions] = [filter_input(a, aux.get(a.get(oid_field)), f.permissions, self.spec)
                                         for a in alerts]
            t_f = time.perf_counter()
            for alert, inp in zip(alerts, inputs[f.permissions]):
                if inp is None:
                    continue
                self.stats["evaluations"] += 1
                try:
                    out = f.compiled.passes(inp)
                    if out is None:
                        continue
                    autosave = self._autosave(f, inp)
                    followup = self._auto_followup(f, inp, alert, autosave) if autosave else None
                    doc = self._outbox_doc(f, alert, out, autosave, followup, now)
                    bson.encode(doc)  # an output the database cannot store is this filter's error
                except Exception as exc:  # noqa: BLE001 - one filter's failure never stops the others
                    errors.setdefault(f.filter_id, []).append(f"candid {alert.get('candid')}: {exc}")
                    continue
                passed.append(doc)
            ms = (time.perf_counter() - t_f) * 1000 / len(alerts)
            if ms > self.slow_ms:
                slow[f.filter_id] = ms
        for fid, msgs in errors.items():
            self.stats["errors"] += len(msgs)
            self._record_errors(fid, len(msgs), msgs[-1])
        for fid, ms in slow.items():  # recorded, so that its owners see it; the others are unaffected
            log.warning("filter %s is slow: %.1f ms per alert (filters.slow_ms_per_alert %.0f)", fid, ms, self.slow_ms)
            self.filter_docs.record_slow(fid, ms, now)
        self.stats["alerts"] += len(alerts)
        self.stats["passed"] += len(passed)
        return passed

    @staticmethod
    def _autosave(f: ActiveFilter, inp: dict):
        a = f.autosave
        if isinstance(a, bool):
            return a
        if not isinstance(a, dict) or not a.get("active"):
            return False
        if f.autosave_compiled is not None and f.autosave_compiled.passes(inp) is None:
            return False
        out = {"comment": a.get("comment"), "ignore_group_ids": a.get("ignore_group_ids") or []}
        if a.get("saver_id") is not None:
            out["saver_id"] = int(a["saver_id"])
        return out

    def _auto_followup(self, f: ActiveFilter, inp: dict, alert: dict, autosave):
        af = f.auto_followup
        if not af or not af.get("active") or f.auto_followup_compiled is None:
            return None
        if af.get("allocation_id") is None or not isinstance(af.get("payload"), dict):
            return None
        res = f.auto_followup_compiled.passes(inp)
        if res is None:
            return None
        payload = dict(af["payload"])
        alias = next((k for k in ("urgency", "Urgency") if k in payload), "priority")
        order = af.get("priority_order", "asc")
        payload.setdefault(alias, 0 if order == "asc" else 5)
        for k, v in (res.get("payload") or {}).items():
            if k in payload:
                payload[k] = v
        comment = res.get("comment", af.get("comment"))
        if alias == "priority":
            start = utcnow()
            payload["start_date"] = start.strftime("%Y-%m-%dT%H:%M:%S.%f")
            payload["end_date"] = (start + dt.timedelta(days=int(af.get("validity_days", 7)))).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")
        if comment:
            comment = f"{comment} ({alias}: {payload[alias]})"
        data = {"obj_id": alert.get(self.spec.object_id), "allocation_id": af["allocation_id"],
                "target_group_ids": sorted({f.group_id, *(af.get("target_group_ids") or [])}),
                "ignore_allocation_ids": af.get("ignore_allocation_ids") or [], "payload": payload,
                "source_group_ids": [f.group_id], "not_if_classified": True, "not_if_spectra_exist": True,
                "not_if_tns_classified": True, "not_if_duplicates": True, "radius": af.get("radius", 0.5)}
        if af.get("not_if_tns_reported") is not None:
            data["not_if_tns_reported"] = af["not_if_tns_reported"]
        if isinstance(autosave, dict) and autosave.get("ignore_group_ids"):
            data["ignore_source_group_ids"] = autosave["ignore_group_ids"]
        return {"allocation_id": af["allocation_id"], "comment": comment, "priority_order": order,
                "priority_alias": alias, "implements_update": af.get("implements_update", True), "data": data}

    def _outbox_doc(self, f: ActiveFilter, alert: dict, out: dict, autosave, followup, now) -> dict:
        candid = alert["candid"]
        doc = {"_id": f"{candid}:{f.filter_id}", "candid": candid, "objectId": alert.get(self.spec.object_id),
               "survey": self.survey, "catalog": self.catalog, "filter_id": f.filter_id, "group_id": f.group_id,
               "fid": f.fid, "permissions": list(f.permissions), "data": out, "autosave": autosave,
               "update_annotations": f.update_annotations, "created_at": now,
               "pending": list(self.targets), "attempts": {t: 0 for t in self.targets},
               "next_at": {t: now for t in self.targets}}
        if followup is not None:
            doc["auto_followup"] = followup
        return doc

    # --- the broker hook --------------------------------------------------------------------
    def process(self, alerts: list[dict], aux: dict | None = None) -> dict:
        """Run the active filters on a stored batch and write the passing pairs to the outbox
        (durably, before the broker commits). ``aux``: the batch's objects' aux documents as the
        store left them (read here when not given). Database errors propagate: the broker's one
        retry policy retries the whole step (idempotent) and pauses consumption meanwhile."""
        t0 = time.perf_counter()
        docs = self.evaluate(alerts, aux)
        new = self.write_outbox(docs)
        self.stats["outbox_new"] += new
        if docs:
            log.info("%s filters: %d alerts x %d filters -> %d passed (%d new in outbox) in %.3f s", self.catalog,
                     len(alerts), len(self.filters), len(docs), new, time.perf_counter() - t0)
        return {"passed": len(docs), "outbox_new": new}

    def write_outbox(self, docs: list[dict]) -> int:
        if not docs:
            return 0
        if not self._indexed:
            db.ensure_outbox_indexes(self.config, self.survey)
            self._indexed = True
        # Plain inserts: the _id ("<candid>:<filter_id>") makes a re-delivered batch's items duplicate-key
        # errors, counted as already there, as upserts with $setOnInsert would, at a fraction of the cost
        # (measured on the embedded database: 512 outbox documents in 70-220 ms vs 660-1,250 ms)
        try:
            res = self.outbox.add(docs)
        except db.BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                if err.get("code") == 11000:  # already in the outbox (a re-delivered batch)
                    continue
                d = docs[err["index"]]
                self._record_errors(d["filter_id"], 1, f"candid {d['candid']}: the database refused the output: "
                                                       f"{err.get('errmsg', '')[:300]}")
            return int(exc.details.get("nInserted", 0))
        return len(res.inserted_ids)
