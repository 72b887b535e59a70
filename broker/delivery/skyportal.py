"""SkyPortal delivery, as Kowalski's broker does it (kowalski.md §3.5-3.6, Appendix B).

Per passing (alert, filter) from the outbox: the candidate (``POST /api/candidates``), the
filter's annotations (``POST``/``PUT /api/sources/{obj}/annotations``), the photometry
(``PUT /api/photometry``: alert + history the filter may see, per stream; forced photometry with
``duplicate_ignore_flux``/``overwrite_flux``), the three thumbnails as PNG (``POST /api/thumbnail``),
autosave (``POST /api/sources`` + ``POST /api/sources/{obj}/comments``) and auto follow-up
(``GET``/``POST``/``PUT /api/followup_request``).

Each item goes through named steps; a finished step is recorded on the outbox document
(``done.skyportal``) at once, so a retry after a failure (SkyPortal down, a 5xx) resumes with the
step that failed and nothing already accepted is sent again.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from typing import Mapping

import requests

from kowalski import db
from kowalski.repositories import Outbox
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.delivery.skyportal")

STEPS = ("candidate", "annotations", "photometry", "thumbnails", "autosave", "followup")
DIFFPOS = {True, 1, "y", "Y", "t", "1", "T"}


class SkyPortalError(Exception):
    pass


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def photometry(alert: dict, view: dict, streams: dict, instrument_id: int, obj_id: str, *,
               bands: Mapping[int, str]) -> list[tuple[dict, dict]]:
    """[(params, body)] of the ``PUT /api/photometry`` calls for this alert: one per stream for the
    light curve (alert + prv_candidates) and one per stream for forced photometry. ``streams``:
    SkyPortal stream id by program id; ``bands``: SkyPortal band by filter id (the survey's)."""
    rows = [alert.get("candidate") or {}] + list(view.get("prv_candidates") or [])
    seen, by_stream = set(), {}
    for r in rows:
        if not _num(r.get("jd")) or not _num(r.get("diffmaglim")) or r["diffmaglim"] <= 0:
            continue
        flt = bands.get(r.get("fid"))
        sid = streams.get(r.get("programid"))
        if flt is None or sid is None:
            continue
        mjd = r["jd"] - 2400000.5
        key = (round(mjd, 8), r.get("magpsf"), flt)
        if key in seen:
            continue
        seen.add(key)
        if _num(r.get("magpsf")):
            flux = 10 ** (-0.4 * (r["magpsf"] - 23.9)) * (1 if r.get("isdiffpos") in DIFFPOS else -1)
            fluxerr = abs(r.get("sigmapsf", 0) * flux * math.log(10) / 2.5) if _num(r.get("sigmapsf")) else None
            if fluxerr is None:
                continue
        else:
            flux, fluxerr = None, 10 ** (-0.4 * (r["diffmaglim"] - 23.9)) / 5
        by_stream.setdefault(sid, []).append((mjd, flux, fluxerr, 23.9, flt, r.get("ra"), r.get("dec")))
    calls = [({}, _body(obj_id, sid, instrument_id, pts, "")) for sid, pts in sorted(by_stream.items())]

    seen, fp_stream = set(), {}
    for r in view.get("fp_hists") or []:
        if r.get("procstatus") not in (0, "0") or not _num(r.get("diffmaglim")) or r["diffmaglim"] <= 0:
            continue
        flt, sid = bands.get(r.get("fid")), streams.get(r.get("programid"))
        if flt is None or sid is None or not _num(r.get("jd")) or not _num(r.get("magzpsci")):
            continue
        zp = r["magzpsci"]
        flux, fluxerr = r.get("forcediffimflux"), r.get("forcediffimfluxunc")
        if not _num(fluxerr):
            fluxerr = 10 ** (-0.4 * (r["diffmaglim"] - zp)) / 5
        if not _num(flux) or abs(flux / fluxerr) <= 3:
            flux = None
        mjd = r["jd"] - 2400000.5
        key = (round(mjd, 8), flt, flux)
        if key in seen:
            continue
        seen.add(key)
        fp_stream.setdefault(sid, []).append((mjd, flux, fluxerr, zp, flt, alert["candidate"].get("ra"),
                                              alert["candidate"].get("dec")))
    calls += [({"duplicate_ignore_flux": "true", "overwrite_flux": "true"},
               _body(obj_id, sid, instrument_id, pts, "alert_fp")) for sid, pts in sorted(fp_stream.items())]
    return calls


def _body(obj_id, sid, instrument_id, pts, origin) -> dict:
    return {"obj_id": obj_id, "stream_ids": [sid], "instrument_id": instrument_id,
            "mjd": [p[0] for p in pts], "flux": [p[1] for p in pts], "fluxerr": [p[2] for p in pts],
            "zp": [p[3] for p in pts], "magsys": ["ab"] * len(pts), "filter": [p[4] for p in pts],
            "ra": [p[5] for p in pts], "dec": [p[6] for p in pts], "origin": [origin or None] * len(pts)}


def thumbnail_png(stamp: bytes, ttype: str, layout: str) -> bytes:
    """Kowalski's thumbnail: 168x168 PNG (4 in at 42 dpi), bone, North up (the survey's stamp
    ``layout``, as Kowalski turns them); log stretch, linear for sub."""
    from kowalski.cutouts import north_up_east_left, read_fits, render_png

    image, _ = read_fits(bytes(stamp))
    return render_png(north_up_east_left(image, None, layout), "linear" if ttype == "sub" else "log", "percentile",
                      "bone", 168)


class SkyPortalTarget:
    name = "skyportal"

    def __init__(self, config, survey: str = "ztf", session: requests.Session | None = None):
        sc = (config.get("delivery") or {}).get("skyportal") or {}
        self.config = config
        self.survey = survey
        self.definition = get_survey(survey, config)
        self.mapping = self.definition.skyportal
        if self.mapping is None:
            raise SkyPortalError(f"survey {survey} has no SkyPortal mapping (bands, streams, instrument) in its "
                                 f"definition: its alerts cannot be posted to SkyPortal")
        self.url = str(sc.get("url", "http://127.0.0.1:5000")).rstrip("/")
        self.timeout = float(sc.get("timeout_s", 5))
        self.instrument = sc.get("instrument") or self.mapping.instrument
        self.session = session or requests.Session()
        self.session.trust_env = False
        from kowalski import __version__
        self.session.headers.update({"Authorization": f"token {sc.get('token')}",
                                     "User-Agent": f"Kowalski {__version__}"})
        self.outbox = Outbox(db.get_db(config), config, survey)
        self.streams: dict | None = None
        self.instrument_id: int | None = None
        self._groups: dict = {}

    # --- HTTP -------------------------------------------------------------------------------
    def call(self, method: str, path: str, json=None, params=None, ok=(200,)) -> requests.Response:
        try:
            r = self.session.request(method, self.url + path, json=json, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SkyPortalError(f"{method} {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
        if r.status_code not in ok:
            msg = r.text[:300]
            try:
                msg = r.json().get("message", msg)
            except ValueError:
                pass
            raise SkyPortalError(f"{method} {path} -> {r.status_code}: {msg}")
        return r

    def data(self, method, path, json=None, params=None):
        return self.call(method, path, json, params).json().get("data")

    def setup(self) -> None:
        if self.streams is not None:
            return
        streams = self.data("GET", "/api/streams")
        mapping = {}
        for s in streams or []:
            for pid in self.mapping.streams.get(s.get("name"), ()):
                mapping[pid] = s["id"]
        wanted = {pid for pids in self.mapping.streams.values() for pid in pids}
        if set(mapping) != wanted:
            raise SkyPortalError(f"SkyPortal streams do not cover {self.survey} program ids {sorted(wanted)}: "
                                 f"{sorted(mapping)} (expected streams {', '.join(self.mapping.streams)})")
        inst = self.data("GET", "/api/instrument", params={"name": self.instrument})
        if not inst:
            raise SkyPortalError(f"SkyPortal has no instrument {self.instrument}")
        self.streams, self.instrument_id = mapping, inst[0]["id"]

    def group(self, group_id: int, filter_id: int) -> tuple[str, str]:
        if group_id not in self._groups:
            g = self.data("GET", f"/api/groups/{group_id}", params={"includeGroupUsers": "False"})
            self._groups[group_id] = g
        g = self._groups[group_id]
        name = g.get("nickname") or g.get("name") or str(group_id)
        fname = next((f.get("name") for f in g.get("filters") or [] if f.get("id") == filter_id), str(filter_id))
        return name, fname

    # --- delivery ---------------------------------------------------------------------------
    def send(self, items) -> dict:
        results = {}
        try:
            self.setup()
        except SkyPortalError as exc:
            return {it.doc["_id"]: str(exc) for it in items}
        shared: dict = {}  # per-alert steps done in this pass (photometry, thumbnails)
        for it in items:
            try:
                self.deliver(it, shared)
                results[it.doc["_id"]] = None
            except SkyPortalError as exc:
                results[it.doc["_id"]] = str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad item never stops the others
                log.exception("skyportal delivery of %s", it.doc["_id"])
                results[it.doc["_id"]] = f"{type(exc).__name__}: {exc}"
        return results

    def _done(self, it, step: str) -> None:
        """Record a step SkyPortal has taken. It has happened, so a database outage must not lose
        the record (the item would be retried and the step, e.g. the candidate, posted twice): the
        write ($addToSet, idempotent) is retried until the database answers."""
        delay = 0.5
        while True:
            try:
                self.outbox.step_done(it.doc["_id"], "skyportal", step)
                break
            except db.DatabaseUnavailable as exc:
                log.warning("%s: recording step %s: database unavailable (%s); retrying in %.1f s", it.doc["_id"],
                            step, str(exc).split(",")[0][:160], delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        it.doc.setdefault("done", {}).setdefault("skyportal", []).append(step)

    def deliver(self, it, shared: dict) -> None:
        d, alert, view = it.doc, it.alert, it.view
        if alert is None or view is None:
            raise SkyPortalError("the alert is not in the archive (or not visible with the filter's permissions)")
        done = set((d.get("done") or {}).get("skyportal") or [])
        oid, cand = d["objectId"], alert["candidate"]
        group_name, filter_name = self.group(d["group_id"], d["filter_id"])
        if "candidate" not in done:
            self.call("POST", "/api/candidates", {
                "id": oid, "ra": cand["ra"], "dec": cand["dec"], "score": cand.get("drb", cand.get("rb")),
                "filter_ids": [d["filter_id"]], "passing_alert_id": d["candid"],
                "passed_at": d["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%f"), "origin": "Kowalski"})
            self._done(it, "candidate")
        if "annotations" not in done:
            ann = (d.get("data") or {}).get("annotations")
            if isinstance(ann, dict) and ann:
                origin = f"{group_name}:{filter_name}"
                existing = self.data("GET", f"/api/sources/{oid}/annotations") or []
                mine = next((a for a in existing if a.get("origin") == origin), None)
                body = {"obj_id": oid, "origin": origin, "data": ann, "group_ids": [d["group_id"]]}
                if mine is None:
                    self.call("POST", f"/api/sources/{oid}/annotations", body)
                elif d.get("update_annotations") and mine.get("data") != ann:
                    self.call("PUT", f"/api/sources/{oid}/annotations/{mine['id']}",
                              {**body, "author_id": mine.get("author_id")})
            self._done(it, "annotations")
        for step, fn in (("photometry", self._photometry), ("thumbnails", self._thumbnails)):
            if step in done:
                continue
            key = (d["candid"], step)
            if key not in shared:
                fn(it)
                shared[key] = True
            self._done(it, step)
        if "autosave" not in done:
            if d.get("autosave"):
                self._autosave(it)
            self._done(it, "autosave")
        if "followup" not in done:
            if d.get("auto_followup") and d.get("autosave"):
                self._followup(it)
            self._done(it, "followup")

    def _photometry(self, it) -> None:
        for params, body in photometry(it.alert, it.view, self.streams, self.instrument_id, it.doc["objectId"],
                                         bands=self.mapping.bands):
            if body["mjd"]:
                self.call("PUT", "/api/photometry", body, params=params or None)

    def _thumbnails(self, it) -> None:
        for which, ttype in enumerate(("new", "ref", "sub")):  # science, template, difference
            stamp = self.definition.cutout_bytes(it.alert, which)
            if stamp is None:
                continue
            png = thumbnail_png(stamp, ttype, self.definition.cutout_layout)
            self.call("POST", "/api/thumbnail", {"obj_id": it.doc["objectId"], "data": base64.b64encode(png).decode(),
                                                  "ttype": ttype})

    def _autosave(self, it) -> None:
        d, oid, gid = it.doc, it.doc["objectId"], it.doc["group_id"]
        a = d["autosave"] if isinstance(d["autosave"], dict) else {}
        r = self.call("HEAD", f"/api/sources/{oid}", ok=(200, 400, 404))
        saved = []
        if r.status_code == 200:
            saved = [g.get("id") for g in (self.data("GET", f"/api/sources/{oid}/groups") or [])]
        if gid in saved:
            return
        body = {"id": oid, "group_ids": [gid], "origin": "Kowalski"}
        if a.get("ignore_group_ids"):
            body["ignore_if_in_group_ids"] = {str(gid): a["ignore_group_ids"]}
        if a.get("saver_id") is not None:
            body["saver_per_group_id"] = {str(gid): a["saver_id"]}
        self.call("POST", "/api/sources", body)
        if a.get("comment"):
            self.call("POST", f"/api/sources/{oid}/comments", {"text": a["comment"], "group_ids": [gid]})

    def _followup(self, it) -> None:
        d, oid = it.doc, it.doc["objectId"]
        af = d["auto_followup"]
        existing = self.data("GET", "/api/followup_request", params={"sourceID": oid}) or []
        if isinstance(existing, dict):
            existing = existing.get("followup_requests", [])
        target = set(af["data"].get("target_group_ids") or [])
        same = [r for r in existing if r.get("allocation_id") == af["allocation_id"]
                and any(s in str(r.get("status", "")) for s in ("complete", "submitted"))
                and (not target or target & set(r.get("target_group_ids") or target))]
        if not same:
            res = self.call("POST", "/api/followup_request", af["data"]).json().get("data") or {}
            if af.get("comment") and not res.get("ignored"):
                self.call("POST", f"/api/sources/{oid}/comments",
                          {"text": af["comment"], "group_ids": sorted({d["group_id"], *target})})
            return
        if not af.get("implements_update"):
            return
        alias, new = af["priority_alias"], af["data"]["payload"].get(af["priority_alias"])
        for r in same:
            old = (r.get("payload") or {}).get(alias)
            better = new is not None and old is not None and (
                new > old if af.get("priority_order", "asc") == "asc" else new < old)
            if "submitted" in str(r.get("status")) and better:
                self.call("PUT", f"/api/followup_request/{r['id']}", {
                    "payload": {**(r.get("payload") or {}), alias: new}, "obj_id": oid,
                    "allocation_id": af["allocation_id"]})
