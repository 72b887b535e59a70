"""Cone searches through HEALPix pixel ranges, with Kowalski's ``$geoWithin/$centerSphere`` and
``$nearSphere`` semantics.

Where the backend's ``$geoWithin`` is not index-backed (the embedded database walks every
document: 2.3 s per cone at 100,000 alerts), a cone is answered by indexed range queries on
``coordinates.healpix`` (see :mod:`kowalski.sky`), one per merged range of the cone's cover,
concurrently; then the exact great-circle distance of every candidate is checked here, and
``near`` orders by it.
Because the cover is checked after the database answered, ``sort``, ``skip`` and ``limit`` are
applied here too.

Which path a collection takes: ``database.positional_index`` = ``geo`` (the 2dsphere index, as on
MongoDB), ``healpix``, or ``auto`` (healpix on the embedded database, geo elsewhere). A
collection without the ``healpix_d16`` index takes the geo path; one whose pixel index has
another depth is refused with the command that fixes it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import numpy as np
from bson import ObjectId

from api.base import APIError
from kowalski import db, sky
from kowalski.repositories import Catalogs

GEO_FIELD = "coordinates.radec_geojson"


def choose_mode(config, index_names: set[str], coll: str) -> str:
    """``"healpix"`` or ``"geo"`` for a collection, from config and its indexes."""
    wanted = str(config["database"].get("positional_index", "auto"))
    other = sorted(n for n in index_names if n.startswith(sky.INDEX_PREFIX) and n != sky.INDEX_NAME)
    if other and wanted != "geo":
        raise APIError(400, f"catalog {coll} has HEALPix ids at another depth ({', '.join(other)}; this version "
                            f"uses {sky.INDEX_NAME}): an administrator must run `kowalski db migrate`")
    has_pixels = sky.INDEX_NAME in index_names
    if not has_pixels and not any("radec" in n or "2dsphere" in n for n in index_names):
        raise APIError(400, f"catalog {coll} has no positions index (coordinates.healpix or a 2dsphere index on "
                            f"{GEO_FIELD}): it cannot be searched by position")
    if not has_pixels:
        return "geo"
    return db.positional_mode(config)


def with_geo_key(config, pipeline: list) -> list:
    """A leading ``$geoNear`` names the position field (``key``) where the backend keeps no 2dsphere
    index (db.wants_geo_index): the embedded server then answers it by brute force, as MongoDB
    answers it from the index; without ``key`` it refuses the stage."""
    head = pipeline[0] if pipeline else None
    if isinstance(head, dict) and isinstance(head.get("$geoNear"), dict) and "key" not in head["$geoNear"] \
            and not db.wants_geo_index(config):
        return [{"$geoNear": {**head["$geoNear"], "key": GEO_FIELD}}, *pipeline[1:]]
    return pipeline


async def index_names(handler, coll: str) -> set[str]:
    """The collection's index names, cached per process like the catalog names."""
    cache = handler.state.catalogs.setdefault("indexes", {})
    now = time.monotonic()
    hit = cache.get(coll)
    if hit and hit[1] > now:
        return hit[0]
    t0 = time.perf_counter()
    names = set(await Catalogs(handler.db).indexes(coll))
    handler.db_seconds += time.perf_counter() - t0
    cache[coll] = (names, now + float(handler.config["api"].get("catalog_cache_seconds", 10)))
    return names


def pixel_conditions(ra_deg: float, dec_deg: float, radius_rad: float) -> list[dict]:
    """Indexed conditions on ``coordinates.healpix`` whose union covers the cone: one range each
    (the embedded server plans an ``$or`` of ranges as a scan, and an ``$in`` costs ~0.6 ms per
    value there, a range ~1 ms in all), plus the documents without a pixel id (normally none: a
    tool that wrote positions without one must not make them invisible; also index-backed)."""
    return [{sky.FIELD: {"$gte": lo, "$lt": hi}} for lo, hi in sky.cone_ranges(ra_deg, dec_deg, radius_rad)] \
        + [{sky.FIELD: None}]


def with_position(projection: dict | None) -> tuple[dict | None, list[str]]:
    """The projection to ask the database with (it must return each document's position for the
    exact check) and the paths to remove from the answers afterwards."""
    if not projection:
        return projection, []
    position_keys = {"coordinates", GEO_FIELD, GEO_FIELD + ".coordinates"}
    inclusion = any(k != "_id" and v not in (0, False) for k, v in projection.items()) \
        or (set(projection) == {"_id"} and projection["_id"] not in (0, False))  # {"_id": 1} includes
    if inclusion:
        if position_keys & set(projection):
            return projection, []
        return {**projection, GEO_FIELD: 1}, [GEO_FIELD]
    excluded = [k for k in projection if k in position_keys and projection[k] in (0, False)]
    return {k: v for k, v in projection.items() if k not in excluded}, excluded


def strip(doc: dict, paths: list[str]) -> dict:
    for path in paths:
        parts = path.split(".")
        node = doc
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(parts[-1], None)
        if len(parts) > 1 and isinstance(doc.get(parts[0]), dict) and not doc[parts[0]]:
            doc.pop(parts[0])
    return doc


def within(docs: list[dict], ra_deg: float, dec_deg: float, max_rad: float, min_rad: float = 0.0,
           ordered: bool = False) -> list[dict]:
    """The documents whose position lies in [min_rad, max_rad] of the centre (inclusive, as
    ``$centerSphere``, ``$minDistance`` and ``$maxDistance``), by distance when ``ordered``."""
    if not docs:
        return []
    lonlat = np.array([_lonlat(d) for d in docs], dtype=float)
    dist = sky.distance_rad(ra_deg, dec_deg, lonlat[:, 0] + 180.0, lonlat[:, 1])
    keep = np.flatnonzero((dist <= max_rad) & (dist >= min_rad))
    if ordered:
        keep = keep[np.argsort(dist[keep], kind="stable")]
    return [docs[i] for i in keep]


def _lonlat(doc: dict) -> tuple[float, float]:
    try:
        lon, lat = doc["coordinates"]["radec_geojson"]["coordinates"][:2]
        return float(lon), float(lat)
    except (KeyError, TypeError, ValueError, IndexError):
        return math.nan, math.nan  # no position: never within a cone (NaN compares false)


# --- sort, skip and limit applied here (the database saw only the cover) ------------------------

_RANK = [(type(None), 1), (bool, 8), ((int, float), 2), (str, 3), (dict, 4), (list, 5), (bytes, 6),
         (ObjectId, 7), (dt.datetime, 9)]


def _get(doc: Any, path: str) -> Any:
    for p in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)
    return doc


def _key(value: Any) -> tuple:
    """BSON comparison order for the types documents hold (null < numbers < strings < objects <
    arrays < binary < ObjectId < booleans < dates), values compared within a type."""
    for types, rank in _RANK:
        if isinstance(value, types):
            if rank in (4, 5):
                return rank, repr(value)
            return rank, value
    return 10, repr(value)


def page(docs: list[dict], sort: list | None, skip: int | None, limit: int | None) -> list[dict]:
    for field, direction in reversed(sort or []):
        if isinstance(direction, int):
            docs = sorted(docs, key=lambda d: _key(_get(d, field)), reverse=direction < 0)
    if skip:
        docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    return docs
