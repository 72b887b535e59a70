"""Delivery of passing alerts from the durable outbox (``<PREFIX>_filter_outbox``).

The broker's FilterRunner writes one outbox document per (candid, filter_id) with the targets
still ``pending`` (``delivery.skyportal.enabled``, ``delivery.kafka.enabled``). ``Delivery`` sends
what is due, target by target, and records the outcome on the document:

* success: the target leaves ``pending`` and ``delivered_at.<target>`` is set;
* failure: ``attempts.<target>`` grows, ``next_at.<target>`` moves by an exponential backoff
  (``delivery.retry_base_s`` doubling up to ``delivery.retry_max_s``) and ``last_error.<target>`` says
  why. The state lives in the database, so retries continue across restarts and nothing is lost.
  With ``delivery.max_attempts`` set, an item failing that often leaves ``pending`` with
  ``gave_up.<target>`` set (kept in the outbox for inspection; re-queue it by adding the target
  back to ``pending``).

A document is marked delivered only after the target acknowledged it (SkyPortal answered, Kafka
acknowledged the write), so a crash between the two can only re-send, never lose: SkyPortal calls
are made idempotent (existence checks, PUTs, duplicate-ignoring photometry) and Kafka records carry
the unique key ``<candid>:<filter_id>`` for consumers to de-duplicate.

Run it with ``kowalski filter deliver`` (a loop), or ``Delivery(config, "ztf").run_once()``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from kowalski import db
from kowalski.repositories import Alerts, Outbox
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.delivery")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def delivery_targets(config, survey: str) -> list[str]:
    """The enabled delivery targets that can take this survey's alerts (SkyPortal only when the
    survey's definition maps its photometry onto SkyPortal)."""
    d = config.get("delivery") or {}
    targets = [t for t in ("skyportal", "kafka") if (d.get(t) or {}).get("enabled")]
    if "skyportal" in targets and get_survey(survey, config).skyportal is None:
        targets.remove("skyportal")
    return targets


@dataclass
class Item:
    """One outbox document with what a target needs: the stored alert (with cutouts), its object's
    aux document, and the filter's view of it (history restricted to the filter's permissions)."""

    doc: dict
    alert: dict | None
    aux: dict | None
    view: dict | None


class Delivery:
    def __init__(self, config, survey: str = "ztf", targets: dict | None = None):
        self.config = config
        self.survey = survey.lower()
        dc = config.get("delivery") or {}
        self.base = float(dc.get("retry_base_s", 2))
        self.max = float(dc.get("retry_max_s", 300))
        self.batch = int(dc.get("batch_size", 100))
        self.max_attempts = int(dc.get("max_attempts", 0) or 0)  # 0: retry forever
        if targets is None:
            targets = {}
            if (dc.get("kafka") or {}).get("enabled"):
                from broker.delivery.kafka_out import KafkaTarget
                targets["kafka"] = KafkaTarget(config)
            if "skyportal" in delivery_targets(config, self.survey):
                from broker.delivery.skyportal import SkyPortalTarget
                targets["skyportal"] = SkyPortalTarget(config, self.survey)
        self.targets = targets
        self.outbox = Outbox(db.get_db(config), config, self.survey)
        db.ensure_outbox_indexes(config, self.survey)  # due-item queries rely on it, whoever created the outbox
        self.stats = {t: {"delivered": 0, "failed": 0} for t in self.targets}

    def due(self, target: str, now: dt.datetime | None = None) -> list[dict]:
        now = now or utcnow()
        return self.outbox.due(target, now, self.batch)

    def _items(self, docs: list[dict]) -> list[Item]:
        from kowalski.filters.inputs import filter_input
        from kowalski.surveys import get_survey

        spec = get_survey(self.survey, self.config).upstream
        oid = spec.object_id
        alerts = {a["candid"]: a for a in Alerts(db.get_db(self.config), self.config, self.survey)
                  .find({"candid": {"$in": [d["candid"] for d in docs]}})}
        aux = db.aux_by_ids(self.config, self.survey, [d["objectId"] for d in docs if d.get("objectId")])
        items = []
        for d in docs:
            a = alerts.get(d["candid"])
            x = aux.get(a.get(oid)) if a else None
            view = filter_input(a, x, d.get("permissions") or [], spec) if a else None
            items.append(Item(d, a, x, view))
        return items

    def backoff(self, attempts: int) -> float:
        return min(self.max, self.base * 2 ** max(0, attempts - 1))

    def run_once(self) -> dict:
        """Send everything due once; returns {target: {"delivered": n, "failed": m}}."""
        out = {}
        for name, target in self.targets.items():
            delivered = failed = 0
            while True:
                docs = self.due(name)
                if not docs:
                    break
                results = target.send(self._items(docs))
                now = utcnow()
                progress = False
                for d in docs:
                    err = results.get(d["_id"], "no result from the target")
                    if err is None:
                        self.outbox.delivered(d["_id"], name, now)
                        delivered += 1
                        progress = True
                    else:
                        n = int((d.get("attempts") or {}).get(name, 0)) + 1
                        give_up = bool(self.max_attempts and n >= self.max_attempts)  # parked, kept, visible: not lost
                        if give_up:
                            log.error("delivery to %s of %s: giving up after %d attempts: %s", name, d["_id"], n,
                                      str(err)[:300])
                        self.outbox.failed(d["_id"], name, n, str(err), now + dt.timedelta(seconds=self.backoff(n)),
                                           gave_up_at=now if give_up else None)
                        failed += 1
                        log.warning("delivery to %s of %s failed (attempt %d, next in %.0f s): %s", name, d["_id"], n,
                                    self.backoff(n), str(err)[:300])
                if not progress:
                    break
            out[name] = {"delivered": delivered, "failed": failed}
            self.stats[name]["delivered"] += delivered
            self.stats[name]["failed"] += failed
            if delivered or failed:
                log.info("delivery to %s: %d delivered, %d failed", name, delivered, failed)
        return out

    def pending(self) -> int:
        return self.outbox.pending_count()

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                res = self.run_once()
            except Exception:  # noqa: BLE001 - the loop survives database hiccups; state is in the outbox
                log.exception("delivery pass failed; retrying")
                res = {}
            if not any(v["delivered"] for v in res.values()):
                stop.wait(idle_s)

    def close(self) -> None:
        for t in self.targets.values():
            close = getattr(t, "close", None)
            if close:
                close()
