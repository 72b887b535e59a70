"""Documents inside a stored credible region, through the HEALPix pixel index.

A region (a MOC, see :mod:`kowalski.skymaps`) becomes at most :data:`MAX_RANGES` indexed range
queries on ``coordinates.healpix`` (depth 16): its cover at that depth with the smallest gaps
closed, so a region with thousands of cells still costs a bounded number of round trips (about
a millisecond each on the embedded database, which plans an ``$or`` of ranges as a scan). Every
candidate is then tested against the MOC itself, so the answer is exactly the documents whose
position lies in the region — what a brute-force point-in-MOC test over the collection gives —
whatever the region's resolution (finer or coarser than the pixel index).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from api import cones
from api.base import APIError
from kowalski import sky, skymaps

MAX_RANGES = 16
DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


def skymap_selector(spec: dict) -> tuple[dict, int]:
    """The skymaps query for ``query.skymap`` and its level (Kowalski's rules: one of dateobs,
    trigger_id, aliases; ``contour`` default 90). ``triggerid`` is accepted too: Kowalski's PUT
    stores ``triggerid`` while its query matched ``trigger_id``, which never found anything."""
    if not isinstance(spec, dict):
        raise APIError(400, "ValueError: query.skymap must be an object")
    name = spec.get("localization_name")
    if not isinstance(name, str) or not name:
        raise APIError(400, "ValueError: query.skymap.localization_name is required")
    ors: list[dict] = []
    if spec.get("dateobs") not in (None, ""):
        ors.append({"dateobs": _dateobs(spec["dateobs"])})
    trig = spec.get("trigger_id", spec.get("triggerid"))
    if trig not in (None, ""):
        ors.append({"triggerid": str(trig)})
    aliases = spec.get("aliases")
    if aliases:
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise APIError(400, "ValueError: query.skymap.aliases must be a list of strings")
        ors.append({"aliases": {"$in": aliases}})
    if not ors:
        raise APIError(400, "ValueError: at least one of dateobs, trigger_id or aliases is required")
    level = spec.get("contour", 90)
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    if isinstance(level, bool) or not isinstance(level, int):
        raise APIError(400, "ValueError: query.skymap.contour must be an integer (a credible level in percent)")
    return {"$or": ors, "localization_name": name}, level


def _dateobs(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        for fmt in DATE_FORMATS:
            try:
                return dt.datetime.strptime(value.strip().rstrip("Z"), fmt)
            except ValueError:
                pass
    raise APIError(400, "ValueError: dateobs must be in the format YYYY-MM-DDTHH:MM:SS[.SSSSSS]")


def jd(when: dt.datetime) -> float:
    """Julian date (UTC) of a naive UTC datetime."""
    return (when - dt.datetime(1970, 1, 1)).total_seconds() / 86400.0 + 2440587.5


def region_of(doc: dict | None, level: int) -> dict:
    if doc is None:
        raise APIError(400, "ValueError: Skymap not found")
    region = (doc.get("regions") or {}).get(f"contour{level}")
    if region is None:
        raise APIError(400, f"ValueError: Contour level {level} not found in skymap")
    return region


def pixel_conditions(region: dict) -> list[dict]:
    """Indexed conditions whose union covers the region, plus documents without a pixel id."""
    return [{sky.FIELD: {"$gte": lo, "$lt": hi}}
            for lo, hi in skymaps.cover_ranges(region, sky.DEPTH, MAX_RANGES)] + [{sky.FIELD: None}]


def inside(docs: list[dict], moc) -> list[dict]:
    """The documents whose position is in the region."""
    if not docs:
        return []
    lonlat = np.array([cones._lonlat(d) for d in docs], dtype=float)
    keep = skymaps.contains(moc, lonlat[:, 0] + 180.0, lonlat[:, 1])
    return [d for d, k in zip(docs, keep) if k]
