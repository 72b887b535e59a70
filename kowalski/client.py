"""A small client for notebooks: the Kowalski REST API as pandas DataFrames and numpy arrays.

It talks only HTTP to the API, with one user's token, so it works the same in a hub notebook
(``connect()`` reads ``KOWALSKI_URL`` and ``KOWALSKI_TOKEN``, which the hub sets to the logged-in
user's) and on a laptop (``connect(url, token=...)`` or ``connect(url, username=..., password=...)``).
The API enforces the data rights: a client sees exactly what its user may see.

    from kowalski.client import connect
    k = connect()
    alerts = k.alerts({"candidate.drb": {"$gt": 0.9}}, limit=100)   # one row per alert
    lc = k.light_curve("ZTF19abzrhgq")                               # detections, upper limits, forced
    image, wcs = k.cutout(alerts.candid[0], "science")
    k.backtest(filter_id, 2460229.5, 2460231.5, dask=cluster.get_client())
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
from typing import Any, Iterable

import numpy as np
import pandas as pd
import requests

from kowalski.surveys import CUTOUT_KINDS as CUTOUTS, SURVEYS

# The client runs in users' notebooks without Kowalski's config: it reads the built-in survey
# definitions' class facts only (band names, pixel scale, cutout fields).
NO_CUTOUTS = {f: 0 for definition in SURVEYS.values() for f in definition.cutout_fields}


def _definition(survey: str):
    return SURVEYS.get(survey.lower())


def survey_bands(survey: str) -> dict:
    """Band names by filter id (empty for a survey that has none)."""
    definition = _definition(survey)
    return dict(definition.bands) if definition else {}


class KowalskiError(RuntimeError):
    """The API refused a request (its message), or could not be reached."""


def _loads(text: str) -> Any:
    """The API's relaxed extended JSON (dates, 64-bit integers) as Python objects."""
    from bson import json_util  # the parser only (shipped with pymongo); no database involved

    return json_util.loads(text)


class Kowalski:
    def __init__(self, url: str, token: str, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"Kowalski({self.url!r})"

    # --- plumbing -------------------------------------------------------------------------------
    def request(self, method: str, path: str, json: Any = None, raw: bool = False, ok: tuple = (), **kw):
        """``ok``: 4xx statuses that are answers, not errors (e.g. 409 already_exists)."""
        try:
            r = self.session.request(method, self.url + path, json=json, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise KowalskiError(f"Kowalski API at {self.url} unreachable: {exc.__class__.__name__}") from None
        if r.status_code >= 400 and r.status_code not in ok:
            try:
                message = r.json().get("message")
            except ValueError:
                message = r.text[:300]
            raise KowalskiError(f"HTTP {r.status_code} on {method} {path}: {message}")
        return r if raw else _loads(r.text)

    def query(self, query_type: str, query: dict, **kwargs) -> Any:
        """``POST /api/queries``; returns the answer's ``data``."""
        body = {"query_type": query_type, "query": query}
        if kwargs:
            body["kwargs"] = kwargs
        return self.request("POST", "/api/queries", body)["data"]

    def ping(self) -> str:
        return self.request("GET", "/")["message"]

    def catalogs(self) -> list[str]:
        return sorted(self.query("info", {"command": "catalog_names"}))

    # --- alerts ---------------------------------------------------------------------------------
    @staticmethod
    def _frame(docs: Iterable[dict]) -> pd.DataFrame:
        docs = list(docs)
        if not docs:
            return pd.DataFrame()
        df = pd.json_normalize(docs, sep=".")
        # candidate.* are the alert's own fields: keep their short names, as in the packet
        df.columns = [c.removeprefix("candidate.") if c.startswith("candidate.") and
                      c.removeprefix("candidate.") not in df.columns else c for c in df.columns]
        return df

    def alerts(self, filter: dict | None = None, catalog: str = "ZTF_alerts", projection: dict | None = None,
               limit: int = 1000, sort: list | None = None) -> pd.DataFrame:
        """Alerts matching a MongoDB filter, one row per alert (cutouts left out)."""
        proj = projection if projection is not None else {"_id": 0, **NO_CUTOUTS}
        kwargs: dict = {"limit": int(limit)}
        if sort:
            kwargs["sort"] = sort
        docs = self.query("find", {"catalog": catalog, "filter": filter or {}, "projection": proj}, **kwargs)
        return self._frame(docs)

    def cone(self, ra: float, dec: float, radius: float = 5.0, unit: str = "arcsec",
             catalog: str = "ZTF_alerts", projection: dict | None = None) -> pd.DataFrame:
        """Documents of ``catalog`` within ``radius`` of (ra, dec) degrees, with their distance in arcsec."""
        proj = projection if projection is not None else (
            {"_id": 0, **NO_CUTOUTS} if catalog.endswith("_alerts") else {})
        data = self.query("cone_search", {
            "object_coordinates": {"cone_search_radius": radius, "cone_search_unit": unit, "radec": {"target": [ra, dec]}},
            "catalogs": {catalog: {"filter": {}, "projection": proj}}})
        df = self._frame(data.get(catalog, {}).get("target", []))
        if not df.empty:
            ras, decs = _positions(df)
            df["distance_arcsec"] = _separation_arcsec(ra, dec, ras, decs)
            df = df.sort_values("distance_arcsec", ignore_index=True)
        return df

    def object(self, object_id: str, catalog: str = "ZTF_alerts") -> dict:
        """The object's aux document (history, forced photometry, cross-matches) or {}."""
        return self.query("find_one", {"catalog": f"{catalog}_aux", "filter": {"_id": object_id}}) or {}

    # --- light curve ----------------------------------------------------------------------------
    def light_curve(self, object_id: str, catalog: str = "ZTF_alerts", survey: str = "ztf") -> pd.DataFrame:
        """One row per epoch: ``kind`` is ``detection`` (alert or history point with a magnitude),
        ``upper_limit`` (a non-detection: ``diffmaglim``) or ``forced`` (forced photometry: flux,
        and a magnitude when S/N >= 3, else a 5-sigma limit in ``diffmaglim``), with ``band``."""
        alerts = self.query("find", {"catalog": catalog, "filter": {"objectId": object_id},
                                     "projection": {"_id": 0, "candidate": 1}})
        return light_curve_frame(alerts, self.object(object_id, catalog), survey)

    # --- cross-matches and scores ---------------------------------------------------------------
    def cross_matches(self, object_id: str, catalog: str = "ZTF_alerts") -> dict[str, pd.DataFrame]:
        """The cross-matches stored by the broker for the object: {catalog: matches}."""
        return {name: self._frame(matches) for name, matches in
                (self.object(object_id, catalog).get("cross_matches") or {}).items()}

    def crossmatch(self, alerts: pd.DataFrame, catalog: str, radius: float = 2.0) -> pd.DataFrame:
        """Matches of each alert (ra, dec) in ``catalog`` within ``radius`` arcsec, one row per pair."""
        out = []
        for _, a in alerts.iterrows():
            m = self.cone(float(a["ra"]), float(a["dec"]), radius, catalog=catalog)
            if not m.empty:
                m.insert(0, "candid", a.get("candid"))
                m.insert(1, "objectId", a.get("objectId"))
                out.append(m)
        return pd.concat(out, ignore_index=True) if out else pd.DataFrame()

    def scores(self, object_id: str | None = None, filter: dict | None = None,
               catalog: str = "ZTF_alerts", limit: int = 1000) -> pd.DataFrame:
        """ML scores of alerts (one row per alert, one column per model), with drb and the time."""
        flt = dict(filter or {})
        if object_id is not None:
            flt["objectId"] = object_id
        docs = self.query("find", {"catalog": catalog, "filter": flt, "projection": {
            "_id": 0, "objectId": 1, "candid": 1, "candidate.jd": 1, "candidate.drb": 1, "candidate.rb": 1,
            "classifications": 1}}, limit=int(limit))
        df = self._frame(docs)
        if df.empty:
            return df
        df.columns = [c.removeprefix("classifications.") for c in df.columns]
        return df[[c for c in df.columns if not c.endswith("_version")]]

    # --- cutouts --------------------------------------------------------------------------------
    def cutout(self, candid: int, which: str = "science", survey: str = "ztf"):
        """(image as a 2-D float array, its astropy WCS) of an alert's cutout."""
        from astropy.io import fits
        from astropy.wcs import WCS

        if which not in CUTOUTS:
            raise ValueError(f"which must be one of {CUTOUTS}")
        raw = self.request("GET", f"/api/cutouts/{survey}/{int(candid)}/{which}/fits", raw=True).content
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ZTF stamps: non-standard SIMPLE card, no WCS keywords
            with fits.open(io.BytesIO(raw), ignore_missing_simple=True) as hdul:
                image = np.asarray(hdul[0].data, dtype=np.float64)
                wcs = WCS(hdul[0].header)
        scale = getattr(_definition(survey), "pixel_scale_arcsec", None)
        if not wcs.has_celestial and scale:
            wcs = self._nominal_wcs(candid, survey, image.shape, scale)
        return image, wcs

    def _nominal_wcs(self, candid: int, survey: str, shape, scale: float):
        """ZTF's stamps carry no WCS: a TAN projection centred on the alert with the survey's pixel
        scale and its stamps' layout (North up, East left with the origin at the bottom)."""
        from astropy.wcs import WCS

        catalog = _definition(survey)({}).alerts_collection  # the default prefix: the client has no config
        doc = self.query("find_one", {"catalog": catalog, "filter": {"candid": int(candid)},
                                      "projection": {"_id": 0, "candidate.ra": 1, "candidate.dec": 1}})
        if not doc:
            raise KowalskiError(f"{survey} alert {candid} not found")
        scale = scale / 3600.0
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [doc["candidate"]["ra"], doc["candidate"]["dec"]]
        w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
        w.wcs.cdelt = [-scale, scale]
        return w

    def triplet(self, candid: int, survey: str = "ztf") -> dict:
        """The three cutouts: {"science": (image, wcs), "template": ..., "difference": ...}."""
        return {w: self.cutout(candid, w, survey) for w in CUTOUTS}

    # --- skymaps --------------------------------------------------------------------------------
    def add_skymap(self, dateobs: str | None = None, skymap: dict | None = None, fits: str | None = None,
                   voevent: str | None = None, contours=(90,), triggerid=None, aliases=None,
                   name: str | None = None) -> dict:
        """``PUT /api/skymap``: a localisation (``skymap`` dict in any of Kowalski's forms, a local FITS
        file ``fits`` sent base64, or a VOEvent's XML) with its credible levels. Returns the answer;
        a skymap stored already with these levels is not an error (``status: already_exists``)."""
        import base64
        body: dict = {"contours": list(contours)}
        if dateobs is not None:
            body["dateobs"] = dateobs
        if triggerid is not None:
            body["triggerid"] = triggerid
        if aliases:
            body["aliases"] = list(aliases)
        if fits is not None:
            with open(fits, "rb") as f:
                skymap = {"localization_name": name or os.path.basename(fits),
                          "content": base64.b64encode(f.read()).decode()}
        if voevent is not None:
            body["voevent"] = voevent
        elif skymap is not None:
            body["skymap"] = skymap
        r = self.request("PUT", "/api/skymap", body, raw=True, ok=(409,))
        return _loads(r.text)

    def skymaps(self) -> pd.DataFrame:
        """The stored skymaps: dateobs, localization_name, triggerid, aliases, contours, areas."""
        rows, offset = [], 0
        while True:
            page = self.request("GET", f"/api/skymaps?offset={offset}")
            rows += page["data"]
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt:
                break
            offset = nxt["offset"]
        return pd.DataFrame(rows)

    def skymap(self, dateobs: str | None = None, localization_name: str | None = None, triggerid=None,
               alias: str | None = None, moc: bool = False) -> dict:
        """One stored skymap (Kowalski's document: contours in GeoJSON, lon = ra - 180) with the
        area and probability of each region; ``moc=True`` adds their MOCs (see ``skymap_moc``)."""
        params = {k: v for k, v in (("dateobs", dateobs), ("localization_name", localization_name),
                                    ("triggerid", triggerid), ("alias", alias)) if v is not None}
        if moc:
            params["moc"] = "true"
        answer = self.request("GET", "/api/skymap", params=params)
        if answer.get("status") != "success":  # Kowalski answers these errors with HTTP 200
            raise KowalskiError(answer.get("message", "skymap not found"))
        return answer["data"]

    def skymap_moc(self, localization_name: str, dateobs: str | None = None, contour: int = 90, **selector):
        """The ``contour``% credible region as a ``mocpy.MOC`` (to plot, or to test positions)."""
        from kowalski.skymaps import region_moc
        doc = self.skymap(dateobs, localization_name, moc=True, **selector)
        region = (doc.get("regions") or {}).get(f"contour{contour}")
        if region is None:
            raise KowalskiError(f"Contour level {contour} not found in skymap")
        return region_moc(region)

    def delete_skymap(self, localization_name: str, dateobs: str | None = None, triggerid=None,
                      alias: str | None = None) -> str:
        body = {k: v for k, v in (("dateobs", dateobs), ("triggerid", triggerid), ("alias", alias)) if v is not None}
        answer = self.request("DELETE", "/api/skymap", {**body, "localization_name": localization_name})
        if answer.get("status") != "success":
            raise KowalskiError(answer.get("message", "no skymap found"))
        return answer["message"]

    def skymap_alerts(self, localization_name: str, dateobs: str | None = None, contour: int = 90,
                      catalog: str = "ZTF_alerts", filter: dict | None = None, projection: dict | None = None,
                      days: tuple[float, float] | None = None, limit: int | None = None, triggerid=None,
                      aliases: list[str] | None = None) -> pd.DataFrame:
        """Alerts (or catalog sources) inside a stored credible region, one row each: the ``skymap``
        query type, with ``days`` = (from, to) relative to the event time on candidate.jd."""
        sel: dict = {"localization_name": localization_name, "contour": int(contour)}
        for k, v in (("dateobs", dateobs), ("trigger_id", triggerid), ("aliases", aliases)):
            if v is not None:
                sel[k] = v
        query: dict = {"skymap": sel, "catalog": catalog, "filter": filter or {},
                       "projection": projection if projection is not None else (
                           {"_id": 0, **NO_CUTOUTS} if catalog.endswith("_alerts") else {})}
        if days is not None:
            query["time_window_days"] = [float(days[0]), float(days[1])]
        kwargs = {"limit": int(limit)} if limit else {}
        return self._frame(self.query("skymap", query, **kwargs))

    # --- filters --------------------------------------------------------------------------------
    def filters(self) -> list[dict]:
        return self.request("GET", "/api/filters")["data"]

    def save_filter(self, group_id: int, filter_id: int, pipeline: list, catalog: str = "ZTF_alerts",
                    permissions: list[int] | None = None, active: bool = False) -> dict:
        """Save a new version of a filter (created on its first version); returns the version."""
        body = {"group_id": group_id, "filter_id": filter_id, "catalog": catalog,
                "permissions": permissions or [1], "pipeline": pipeline, "active": active}
        return self.request("POST", "/api/filters", body)["data"]

    def set_filter(self, filter_id: int, **changes) -> dict:
        """PATCH a filter: active, active_fid, autosave, auto_followup, update_annotations."""
        return self.request("PATCH", "/api/filters", {"filter_id": filter_id, **changes})

    def test_filter(self, filter_id: int, start_jd: float | None = None, end_jd: float | None = None,
                    object_ids: list[str] | None = None, fid: str | None = None,
                    max_time_ms: int = 60000) -> tuple[pd.DataFrame, dict]:
        """``POST /api/filters/{id}/test``: (outputs, summary) of a version over the archive."""
        return _test_slice(self.url, self.token, filter_id, fid, max_time_ms, (start_jd, end_jd), object_ids)

    def alert_days(self, start_jd: float, end_jd: float, catalog: str = "ZTF_alerts") -> pd.DataFrame:
        """Alerts per day (JD floor) in [start_jd, end_jd]: columns day, alerts."""
        rows = self.query("aggregate", {"catalog": catalog, "pipeline": [
            {"$match": {"candidate.jd": {"$gte": float(start_jd), "$lte": float(end_jd)}}},
            {"$group": {"_id": {"$floor": "$candidate.jd"}, "alerts": {"$sum": 1}}},
            {"$sort": {"_id": 1}}]})
        return pd.DataFrame([{"day": float(r["_id"]), "alerts": int(r["alerts"])} for r in rows],
                            columns=["day", "alerts"])

    def backtest(self, filter_id: int, start_jd: float, end_jd: float, fid: str | None = None,
                 dask=None, alerts_per_slice: int = 500, catalog: str = "ZTF_alerts",
                 max_time_ms: int = 120000) -> tuple[pd.DataFrame, dict]:
        """Run a filter version over the archived alerts of [start_jd, end_jd], fanned out in slices.

        The days that hold alerts are split into slices of about ``alerts_per_slice`` alerts; each
        slice is one ``/api/filters/{id}/test`` call made with this client's token, so the rights
        are the user's. With ``dask`` (a ``distributed.Client``, e.g. ``cluster.get_client()`` of a
        dask-gateway cluster) the slices run on its workers in parallel; without, one after the
        other here. Returns (outputs, summary)."""
        if end_jd < start_jd:
            raise ValueError("end_jd must not be before start_jd")
        slices = []
        for day, n in self.alert_days(start_jd, end_jd, catalog).itertuples(index=False):
            lo, hi = max(day, start_jd), min(day + 1, end_jd)
            k = max(1, math.ceil(n / max(1, alerts_per_slice)))
            edges = np.linspace(lo, hi, k + 1)
            # /test bounds are inclusive: a slice ends just before the next one starts
            slices += [(float(edges[i]), float(edges[i + 1]) - (1e-9 if edges[i + 1] < end_jd else 0.0))
                       for i in range(k)]
        n = len(slices)
        args = (self.url, self.token, filter_id, fid, max_time_ms)
        if dask is not None:
            futures = dask.map(_test_slice, *[[a] * n for a in args], slices, pure=False)
            results = dask.gather(futures)
        else:
            results = [_test_slice(*args, s) for s in slices]
        frames = [f for f, _ in results if not f.empty]
        outputs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        sums = [s for _, s in results]
        summary = {"slices": n, "alerts": sum(s.get("alerts", 0) for s in sums),
                   "passed": sum(s.get("passed", 0) for s in sums), "errors": sum(s.get("errors", 0) for s in sums),
                   "first_error": next((s["first_error"] for s in sums if s.get("first_error")), None),
                   "fid": sums[0].get("fid") if sums else fid, "on_dask": dask is not None,
                   "api_seconds": round(sum(s.get("seconds", 0.0) for s in sums), 3)}
        summary["rate"] = summary["passed"] / summary["alerts"] if summary["alerts"] else 0.0
        counts = [s["stage_counts"] for s in sums if s.get("stage_counts") is not None]
        # alerts remaining after each stage, over all slices (None when no slice held an alert)
        summary["stage_counts"] = [sum(c) for c in zip(*counts)] if counts and len(counts) == n else None
        return outputs, summary


def _test_slice(url: str, token: str, filter_id: int, fid: str | None, max_time_ms: int,
                jd_range: tuple, object_ids: list | None = None) -> tuple[pd.DataFrame, dict]:
    """One /test call (module level: Dask workers import it)."""
    body: dict = {"max_time_ms": int(max_time_ms)}
    start, end = jd_range
    if start is not None:
        body.update(start_date=float(start), end_date=float(end))
    if object_ids is not None:
        body["object_ids"] = list(object_ids)
    if fid:
        body["filter_version"] = fid
    answer = Kowalski(url, token).request("POST", f"/api/filters/{int(filter_id)}/test", body)
    return Kowalski._frame(answer.get("data") or []), answer.get("summary") or {}


LC_COLUMNS = ["jd", "mjd", "band", "fid", "kind", "magpsf", "sigmapsf", "diffmaglim", "flux", "flux_err",
              "flux_ujy", "flux_ujy_err", "programid", "candid", "alert"]


def light_curve_frame(alerts: Iterable[dict], aux: dict, survey: str = "ztf") -> pd.DataFrame:
    """The light curve (see ``Kowalski.light_curve``) of an object's alerts and aux document.
    ``flux_ujy`` is the flux in µJy: from the magnitude for detections, from the forced flux and
    its zero point for forced photometry."""
    rows = []
    for a in alerts:
        c = a.get("candidate", {})
        rows.append({**_point(c), "kind": "detection", "candid": c.get("candid"), "alert": True})
    for p in (aux or {}).get("prv_candidates") or []:
        kind = "detection" if p.get("magpsf") is not None else "upper_limit"
        rows.append({**_point(p), "kind": kind, "candid": p.get("candid"), "alert": False})
    for p in (aux or {}).get("fp_hists") or []:
        rows.append({**_forced(p), "kind": "forced", "alert": False})
    if not rows:
        return pd.DataFrame(columns=LC_COLUMNS)
    df = pd.DataFrame(rows)
    df["mjd"] = df["jd"] - 2400000.5
    df["band"] = df["fid"].map(survey_bands(survey)).fillna(df["fid"].astype(str))
    for c in LC_COLUMNS:
        if c not in df:
            df[c] = np.nan
    det = df["kind"] == "detection"
    mag = pd.to_numeric(df["magpsf"], errors="coerce")
    df.loc[det, "flux_ujy"] = 10 ** (-0.4 * (mag[det] - 23.9))
    df.loc[det, "flux_ujy_err"] = df.loc[det, "flux_ujy"] * pd.to_numeric(df["sigmapsf"], errors="coerce")[det] / 1.0857
    # an alert's own point also appears in later alerts' histories: keep one
    df = df.sort_values(["jd", "alert"], ascending=[True, False])
    df = df.drop_duplicates(subset=["jd", "fid", "kind"], keep="first")
    return df[LC_COLUMNS].reset_index(drop=True)


def _point(p: dict) -> dict:
    return {"jd": p.get("jd"), "fid": p.get("fid"), "magpsf": p.get("magpsf"), "sigmapsf": p.get("sigmapsf"),
            "diffmaglim": p.get("diffmaglim"), "programid": p.get("programid")}


def _forced(p: dict) -> dict:
    """Forced photometry: flux (DN) and, when S/N >= 3, the AB magnitude; else a 5-sigma limit."""
    flux, err, zp = p.get("forcediffimflux"), p.get("forcediffimfluxunc"), p.get("magzpsci")
    mag = sig = lim = None
    good = all(isinstance(v, (int, float)) and not math.isnan(v) for v in (flux, err, zp)) and err > 0 and flux > -99999
    if good:
        if flux / err >= 3:
            mag, sig = zp - 2.5 * math.log10(flux), 1.0857 * err / flux
        else:
            lim = zp - 2.5 * math.log10(5 * err)
    ujy = 10 ** (-0.4 * (zp - 23.9)) if good else None  # DN -> µJy at the image's zero point
    return {"jd": p.get("jd"), "fid": p.get("fid"), "magpsf": mag, "sigmapsf": sig, "diffmaglim": lim,
            "flux": flux if good else None, "flux_err": err if good else None, "programid": p.get("programid"),
            "flux_ujy": flux * ujy if good else None, "flux_ujy_err": err * ujy if good else None}


def _positions(df: pd.DataFrame):
    for ra, dec in (("ra", "dec"), ("candidate.ra", "candidate.dec")):
        if ra in df and dec in df:
            return df[ra].astype(float).to_numpy(), df[dec].astype(float).to_numpy()
    lon = df["coordinates.radec_geojson.coordinates"].map(lambda c: c[0] + 180.0)
    lat = df["coordinates.radec_geojson.coordinates"].map(lambda c: c[1])
    return lon.to_numpy(dtype=float), lat.to_numpy(dtype=float)


def _separation_arcsec(ra0, dec0, ra, dec):
    ra0, dec0, ra, dec = map(np.radians, (ra0, dec0, ra, dec))
    s = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec0) * np.cos(dec) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0, 1)))) * 3600.0


def connect(url: str | None = None, token: str | None = None, username: str | None = None,
            password: str | None = None, timeout: float = 120.0) -> Kowalski:
    """A client for ``url`` (default ``$KOWALSKI_URL``) with ``token`` (default ``$KOWALSKI_TOKEN``),
    or with a token obtained from ``username``/``password``. Checks the token at once."""
    url = url or os.environ.get("KOWALSKI_URL")
    if not url:
        raise KowalskiError("no Kowalski URL: pass url= or set KOWALSKI_URL (the hub sets it in your server)")
    if token is None and username is not None:
        r = requests.post(url.rstrip("/") + "/api/auth", json={"username": username, "password": password},
                          timeout=timeout)
        if r.status_code != 200:
            raise KowalskiError(f"login refused: {r.json().get('message', r.text[:200])}")
        token = r.json()["token"]
    token = token or os.environ.get("KOWALSKI_TOKEN")
    if not token:
        raise KowalskiError("no Kowalski token: pass token= (or username=/password=) or set KOWALSKI_TOKEN")
    k = Kowalski(url, token, timeout)
    k.ping()
    return k
