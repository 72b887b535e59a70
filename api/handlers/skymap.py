"""``/api/skymap``: gravitational-wave and GRB localisations and their credible regions (Kowalski's).

PUT ``{"dateobs", "triggerid"?, "aliases"?, "voevent"?, "skymap"?, "contours"?}`` stores, per
(dateobs, localization_name), Kowalski's GeoJSON contours (``contours.contour90``, lon = ra - 180)
and a MOC of each credible region (``regions.contour90``: depth-29 ranges, area, probability),
which the ``skymap`` query type uses. New → "added skymap for ... with contours [90]"; new levels
of a stored skymap → "updated skymap for ... to add contours [95]"; every level stored → 409
``already_exists``. Bad input is a 400 ``"ValueError: ..."`` (Kowalski's middleware turned every
handler exception into that) and nothing is stored.

GET ``?dateobs=&triggerid=&alias=&localization_name=&contours=[&moc=true]`` and DELETE
``{dateobs|triggerid|alias, localization_name}`` answer their errors ("no skymap found", ...) with
HTTP 200, as Kowalski does. ``GET /api/skymaps`` lists the stored skymaps (beyond Kowalski).

A ``{url}`` skymap is fetched by the server within ``skymaps.fetch_timeout_s`` (default 20 s) and
``skymaps.max_download_bytes`` (64 MiB), http(s) only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import time
from urllib.parse import urlparse


from api.base import APIError, BaseHandler, authenticated
from kowalski import contours as kcontours
from kowalski import skymaps, voevent
from kowalski.db import DuplicateKeyError
from kowalski.repositories import Skymaps
from kowalski.skymaps import SkymapError

log = logging.getLogger("kowalski.api.skymap")

DEFAULT_LEVELS = [90]
DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


def settings(config) -> dict:
    s = config["skymaps"]  # config.defaults.yaml
    return {"fetch_timeout_s": float(s["fetch_timeout_s"]), "max_download_bytes": int(s["max_download_bytes"]),
            "fetch_private_hosts": bool(s["fetch_private_hosts"])}


async def check_public_host(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or reserved address:
    a logged-in user must not make the server reach what only it can reach (the database, the hub's
    API, a cloud metadata service). ``skymaps.fetch_private_hosts: true`` lifts this."""
    import ipaddress
    import socket

    if allow_private:
        return
    u = urlparse(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(u.hostname, u.port or (443 if u.scheme == "https" else 80),
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise bad(f"could not fetch skymap from {url}: unreachable ({exc.strerror or exc})") from None
    for *_, addr in infos:
        ip = ipaddress.ip_address(addr[0].split("%")[0])
        if not ip.is_global:
            raise bad(f"could not fetch skymap from {url}: {u.hostname} is a {'loopback' if ip.is_loopback else 'private'}"
                      f" address ({ip}); only public hosts are fetched (skymaps.fetch_private_hosts)")


def bad(message: str) -> APIError:
    log.info("skymap request refused: %s", message)
    return APIError(400, f"ValueError: {message}")


# --- request fields ------------------------------------------------------------------------------

def parse_levels(value, default=None) -> list[int]:
    """``90``, ``[90, 95]`` or ``"90,95"`` → [90, 95]: whole percentages in (0, 100]."""
    if value is None:
        return list(default or DEFAULT_LEVELS)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, list):
        value = [value]
    if not value:
        raise bad("contours must be a number or a list of numbers (credible levels in percent)")
    out = []
    for v in value:
        try:
            f = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            f = math.nan
        if not (0 < f <= 100) or not f.is_integer():
            raise bad(f"contour levels must be whole percentages in (0, 100], not {v!r}")
        if int(f) not in out:
            out.append(int(f))
    return out


def parse_dateobs(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else \
            value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, str):
        text = value.strip().rstrip("Z")
        for fmt in DATE_FORMATS:
            try:
                return dt.datetime.strptime(text, fmt)
            except ValueError:
                pass
    raise bad("dateobs must be in the format YYYY-MM-DDTHH:MM:SS[.SSSSSS] if it is a string")


def parse_triggerid(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or len(str(value)) > 128:
        raise bad("triggerid must be a string or an integer")
    return str(value).strip()


def parse_aliases(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in value):
        raise bad("aliases must be a list of strings")
    return [str(a) for a in value]


def level_key(level) -> str:
    return f"contour{level}"


def stored_levels(doc: dict) -> list[int]:
    out = []
    for key in (doc.get("contours") or {}):
        if key.startswith("contour") and key[7:].isdigit():
            out.append(int(key[7:]))
    return out


# --- building ------------------------------------------------------------------------------------

async def fetch(config, url: str) -> bytes:
    """The bytes at ``url``, or a 400 that says why not (unreachable, timed out, too large)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise bad(f"skymap.url must be an http(s) URL, not {str(url)[:200]!r}")
    s = settings(config)
    client = AsyncHTTPClient(force_instance=True, max_body_size=s["max_download_bytes"])
    t0 = time.monotonic()
    try:
        for _ in range(6):  # redirects followed here, so that every hop's host is checked
            await check_public_host(url, s["fetch_private_hosts"])
            r = await client.fetch(url, connect_timeout=s["fetch_timeout_s"], request_timeout=s["fetch_timeout_s"],
                                   follow_redirects=False, raise_error=False)
            location = r.headers.get("Location") if r.code in (301, 302, 303, 307, 308) else None
            if not location:
                break
            from urllib.parse import urljoin
            url = urljoin(url, location)
            if urlparse(url).scheme not in ("http", "https"):
                raise bad(f"could not fetch skymap: redirected to a non-http(s) URL {url[:200]!r}")
        else:
            raise bad(f"could not fetch skymap from {url}: more than 5 redirects")
    except HTTPClientError as exc:  # tornado raises 599 (timeouts, body too large) whatever raise_error says
        what = "timed out" if "timeout" in str(exc).lower() else str(exc)
        raise bad(f"could not fetch skymap from {url}: {what} (after {time.monotonic() - t0:.1f} s; "
                  f"limit {s['fetch_timeout_s']:g} s, {s['max_download_bytes']} bytes)") from None
    except OSError as exc:
        raise bad(f"could not fetch skymap from {url}: unreachable ({exc.strerror or exc})") from None
    finally:
        client.close()
    if r.code >= 400:
        raise bad(f"could not fetch skymap from {url}: HTTP {r.code}")
    log.info("fetched skymap %s: %d bytes in %.2f s", url, len(r.body or b""), time.monotonic() - t0)
    return r.body or b""


def build_levels(sm: skymaps.Skymap, levels: list[int]) -> tuple[dict, dict]:
    """(contours, regions) for ``levels``: Kowalski's GeoJSON and our MOCs, keyed contourNN."""
    contours, regions = {}, {}
    for level in levels:
        region = skymaps.credible_region(sm, level)
        contours[level_key(level)] = kcontours.geojson(region.moc, level)
        regions[level_key(level)] = region.document()
    return contours, regions


async def in_thread(fn, *args):
    """CPU work off the event loop; errors of the input become 400 ``"<Type>: ..."`` (as Kowalski)."""
    try:
        return await asyncio.to_thread(fn, *args)
    except SkymapError as exc:
        raise bad(str(exc)) from None
    except (MemoryError, RecursionError) as exc:
        raise bad(f"the skymap is too large to process ({exc.__class__.__name__})") from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError):
        raise
    except BaseException as exc:  # noqa: BLE001 - Kowalski: an uncaught exception is a 400 "<Type>: msg"
        # (BaseException: a panic in a Rust extension, cdshealpix or mocpy, is a pyo3 PanicException)
        log.warning("skymap processing failed", exc_info=exc)
        raise APIError(400, f"{exc.__class__.__name__}: {str(exc)[:300]}") from None


def summary(doc: dict, with_moc: bool = False) -> dict:
    """A stored skymap as answered: no _id, dateobs in ISO, regions without ranges unless asked."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    if isinstance(out.get("dateobs"), dt.datetime):
        out["dateobs"] = out["dateobs"].isoformat()
    if not with_moc and isinstance(out.get("regions"), dict):
        out["regions"] = {k: {kk: vv for kk, vv in r.items() if kk != "ranges"} | {"n_ranges": len(r.get("ranges") or [])}
                          for k, r in out["regions"].items()}
    return out


class SkymapHandler(BaseHandler):
    @property
    def skymaps(self):
        return Skymaps(self.db, self.config)

    async def _db(self, awaitable):
        t0 = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.db_seconds += time.perf_counter() - t0

    async def _existing(self, dateobs, triggerid, aliases, name) -> dict | None:
        """Kowalski's identity: (dateobs OR triggerid OR the same alias set) AND localization_name."""
        ors: list[dict] = [{"dateobs": dateobs}]
        if triggerid is not None:
            ors.append({"triggerid": triggerid})
        if aliases:
            ors.append({"aliases": {"$in": aliases}})
        docs = await self._db(self.skymaps.find({"localization_name": name, "$or": ors}, {"regions": 0}, 100))
        for d in docs:
            if d.get("dateobs") == dateobs or (triggerid is not None and d.get("triggerid") == triggerid) or \
                    (aliases and sorted(d.get("aliases") or []) == sorted(aliases)):
                return d
        return None

    @authenticated
    async def put(self):
        """Add a skymap, or new credible levels of a stored one."""
        body = self.json_object()
        levels = parse_levels(body.get("contours"))
        dateobs = parse_dateobs(body.get("dateobs"))
        triggerid = parse_triggerid(body.get("triggerid"))
        aliases = parse_aliases(body.get("aliases"))
        if body.get("voevent") is not None:
            try:
                root = voevent.parse(body["voevent"])
                dateobs = dateobs or voevent.dateobs(root)
                triggerid = voevent.trigger_id(root) or triggerid
                aliases += [a for a in voevent.aliases(root, dateobs) if a not in aliases]
                spec = voevent.skymap(root)
            except SkymapError as exc:
                raise bad(str(exc)) from None
        elif isinstance(body.get("skymap"), dict):
            spec = body["skymap"]
        else:
            raise bad("either skymap dict or voevent is required in the request body")
        if "url" in spec:
            data = await fetch(self.config, spec["url"])
            name = spec.get("localization_name") or os.path.basename(urlparse(spec["url"]).path) or "skymap.fits"
            sm = await in_thread(skymaps.read_fits, data, name)
        else:
            sm = await in_thread(skymaps.parse, spec)
        if dateobs is None and sm.meta.get("dateobs"):
            dateobs = parse_dateobs(str(sm.meta["dateobs"]).replace(" ", "T")[:26])
        if dateobs is None:
            raise bad("dateobs is required in the request body")
        name = sm.localization_name
        existing = await self._existing(dateobs, triggerid, aliases, name)
        have = stored_levels(existing) if existing else []
        todo = [lv for lv in levels if lv not in have]
        if existing is not None and not todo:
            self.set_status(409)
            self.finish_json({"status": "already_exists", "message": "skymap already exists with the same contours",
                              "data": {"dateobs": existing["dateobs"].isoformat(), "localization_name": name,
                                       "contours": have}})
            return
        t0 = time.perf_counter()
        contours, regions = await in_thread(build_levels, sm, todo)
        seconds = time.perf_counter() - t0
        if existing is not None:
            await self._update(existing, contours, regions)
            self.success(f"updated skymap for {existing['dateobs']} to add contours {todo}",
                         {"dateobs": existing["dateobs"].isoformat(), "localization_name": name, "contours": have + todo})
            return
        ra, dec = skymaps.center(sm)
        doc = {"dateobs": dateobs, "aliases": aliases, "localization_name": name,
               "contours": {"center": kcontours.center_point(ra, dec), **contours}, "regions": regions,
               "created_by": self.username, "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
               "meta": {k: v for k, v in sm.meta.items() if k != "dateobs"} | {"cells": int(sm.uniq.size)}}
        if triggerid is not None:
            doc["triggerid"] = triggerid
        try:
            await self._db(self.skymaps.add(doc))
        except DuplicateKeyError:  # the same skymap stored concurrently: add our levels to it
            existing = await self._existing(dateobs, triggerid, aliases, name)
            if existing is None:
                raise APIError(409, "a skymap with this dateobs and localization_name was stored concurrently") from None
            await self._update(existing, contours, regions)
        log.info("skymap %s %s stored with contours %s in %.2f s (%d cells)", dateobs.isoformat(), name, todo,
                 seconds, sm.uniq.size)
        self.success(f"added skymap for {dateobs} with contours {todo}",
                     {"dateobs": dateobs.isoformat(), "localization_name": name, "contours": todo})

    async def _update(self, existing: dict, contours: dict, regions: dict) -> None:
        sets = {f"contours.{k}": v for k, v in contours.items()} | {f"regions.{k}": v for k, v in regions.items()}
        await self._db(self.skymaps.update(existing["_id"], sets))

    def finish_json(self, body: dict) -> None:
        from api.base import dumps
        self.server_timing()
        self.finish(dumps(body))

    def error200(self, message: str) -> None:
        """Kowalski answers GET/DELETE errors with HTTP 200."""
        log.info("skymap %s: %s", self.request.method, message)
        self.finish_json({"status": "error", "message": message})

    def _selector(self, get) -> dict | None:
        query: dict = {}
        try:
            dateobs = parse_dateobs(get("dateobs"))
            triggerid = parse_triggerid(get("triggerid"))
        except APIError as exc:
            self.error200(exc.message.removeprefix("ValueError: "))
            return None
        if dateobs is not None:
            query["dateobs"] = dateobs
        if triggerid is not None:
            query["triggerid"] = triggerid
        alias = get("alias")
        if alias not in (None, ""):
            if not isinstance(alias, str):
                self.error200("alias must be a string")
                return None
            query["aliases"] = alias
        return query

    @authenticated
    async def get(self):
        """A stored skymap: its contours, and its regions' MOCs with ``moc=true``."""
        get = self.get_query_argument
        query = self._selector(lambda k: get(k, None))
        if query is None:
            return
        name = get("localization_name", None)
        if name:
            query["localization_name"] = name
        if not query:
            return self.error200("must provide dateobs, triggerid, or alias")
        with_moc = (get("moc", "false") or "").lower() in ("1", "true", "yes")
        doc = await self._db(self.skymaps.get(query))
        if doc is None:
            return self.error200("no skymap found")
        wanted = get("contours", None)
        if wanted not in (None, ""):
            try:
                wanted = parse_levels(wanted)
            except APIError:
                return self.error200("contours must be an integer or a comma-separated list of integers")
            missing = [lv for lv in wanted if level_key(lv) not in (doc.get("contours") or {})]
            if missing:
                return self.error200(f"skymap exists but is missing contours {missing}")
        self.success(data=summary(doc, with_moc))

    @authenticated
    async def delete(self):
        """Remove a skymap: ``{dateobs|triggerid|alias, localization_name}``."""
        body = self.json_object()
        query = self._selector(body.get)
        if query is None:
            return
        if not query:
            return self.error200("must provide dateobs, triggerid, or alias")
        name = body.get("localization_name")
        if not isinstance(name, str) or not name:
            return self.error200("localization_name is required")
        query["localization_name"] = name
        result = await self._db(self.skymaps.remove(query))
        if result.deleted_count == 0:
            return self.error200("no skymap found")
        log.info("skymap %s deleted by %s", query, self.username)
        self.success(f"deleted {result.deleted_count} skymap")


class SkymapsHandler(BaseHandler):
    @authenticated
    async def get(self):
        """The stored skymaps, newest event first (``?offset=&limit=``)."""
        skymaps = Skymaps(self.db, self.config)
        offset, limit = self.page_args()
        t0 = time.perf_counter()
        total = await skymaps.count()
        docs = await skymaps.page(offset, limit, {"contours": 0})
        self.db_seconds += time.perf_counter() - t0
        rows = []
        for d in docs:
            s = summary(d)
            s["contours"] = sorted(int(k[7:]) for k in (s.pop("regions", None) or {}) if k[7:].isdigit())
            s["areas_deg2"] = {str(k[7:]): r.get("area_deg2") for k, r in (summary(d).get("regions") or {}).items()}
            rows.append(s)
        nxt = offset + limit if offset + limit < total else None
        self.success(f"Retrieved {len(rows)} skymaps", rows, _pagination={
            "offset": offset, "limit": limit, "total": total,
            "next": None if nxt is None else {"offset": nxt, "limit": limit,
                                              "url": f"{self.request.path}?offset={nxt}&limit={limit}"}})


default_handlers = [
    (r"/api/skymap/?", SkymapHandler),
    (r"/api/skymaps/?", SkymapsHandler),
]
