"""The alert browser's form as API queries (pure functions: parsing and query building).

Every parse error is an ``InputError`` whose message is shown under the form as it is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from astropy import units as u
from astropy.coordinates import Angle
from astropy.time import Time

RADIUS_UNITS = {"arcsec": u.arcsec, "arcmin": u.arcmin, "deg": u.deg}
OPS = {">=": "$gte", "≥": "$gte", ">": "$gt", "<=": "$lte", "≤": "$lte", "<": "$lt", "=": "$eq", "==": "$eq"}
THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|≥|<=|≤|==|=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class InputError(ValueError):
    """Bad input in the form: the message says which field and what is expected."""


def parse_position(text: str) -> tuple[float, float]:
    """RA, Dec in degrees from "ra dec" (decimal degrees) or sexagesimal ("05:46:37.9 -10:13:35",
    "5h46m37.9s -10d13m35s"); a comma may separate them."""
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        raise InputError(f"position {text!r}: give RA and Dec, e.g. '71.6578 -10.2264' or '04:46:37.9 -10:13:35'")
    ra_s, dec_s = parts
    try:
        if _is_number(ra_s) and _is_number(dec_s):
            ra, dec = float(ra_s), float(dec_s)
        else:
            ra = Angle(ra_s, unit=u.deg if ra_s.lower().endswith("d") else u.hourangle).deg
            dec = Angle(dec_s, unit=u.deg).deg
    except (ValueError, TypeError, u.UnitsError):
        raise InputError(f"position {text!r} is not readable as RA Dec (decimal degrees or sexagesimal)") from None
    if not (0 <= ra < 360) or not (-90 <= dec <= 90):
        raise InputError(f"position {text!r} is off the sky: RA must be in [0, 360) and Dec in [-90, 90] degrees")
    return float(ra), float(dec)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def radius_arcsec(value: float, unit: str) -> float:
    if unit not in RADIUS_UNITS:
        raise InputError(f"radius unit must be one of {', '.join(RADIUS_UNITS)}, not {unit!r}")
    if not value or value <= 0:
        raise InputError("radius must be a positive number")
    arcsec = (float(value) * RADIUS_UNITS[unit]).to_value(u.arcsec)
    if arcsec > 3600 * 10:
        raise InputError("radius must be at most 10 degrees")
    return arcsec


def parse_time(text: str, what: str) -> float | None:
    """A JD (a number) or a date/time string (ISO, e.g. 2023-10-12 or 2023-10-12T06:00) as a JD."""
    text = (text or "").strip()
    if not text:
        return None
    if _is_number(text):
        jd = float(text)
        if not 2_400_000 < jd < 2_600_000:
            raise InputError(f"{what} {text!r}: a JD must be between 2400000 and 2600000")
        return jd
    try:
        return float(Time(text, format="isot" if "T" in text else "iso", scale="utc").jd)
    except ValueError:
        raise InputError(f"{what} {text!r} is neither a JD nor a date (e.g. 2023-10-12 or 2023-10-12T06:00)") from None


def parse_thresholds(text: str) -> dict:
    """ "bts >= 0.8, drb > 0.5" as a MongoDB filter on the alerts' ML scores (``classifications``)
    or, for names with a dot or the candidate's own fields, on those fields."""
    out: dict = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,;]|\band\b", text or ""))):
        m = THRESHOLD.match(part)
        if not m:
            raise InputError(f"score threshold {part!r}: write e.g. 'bts >= 0.8' (name, operator, number)")
        name, op, value = m.groups()
        key = name if "." in name else (f"candidate.{name}" if name in ("drb", "rb") else f"classifications.{name}")
        out.setdefault(key, {})[OPS[op]] = float(value)
    return out


@dataclass
class Search:
    """The form's values; ``mongo_filter()`` and ``cone()`` build the API query."""
    object_id: str = ""
    position: str = ""
    radius: float = 5.0
    radius_unit: str = "arcsec"
    start: str = ""
    end: str = ""
    mag_min: float | None = None
    mag_max: float | None = None
    scores: str = ""
    sort: list = field(default_factory=lambda: [["candidate.jd", -1]])

    def mongo_filter(self) -> dict:
        flt: dict = {}
        oid = self.object_id.strip()
        if oid:
            if not re.fullmatch(r"[A-Za-z0-9_.+-]{3,40}", oid):
                raise InputError(f"object id {oid!r}: letters, digits and _.+- only (e.g. ZTF20aakyoez)")
            flt["objectId"] = oid
        t0, t1 = parse_time(self.start, "start"), parse_time(self.end, "end")
        if t0 is not None and t1 is not None and t1 < t0:
            raise InputError("the end of the time range is before its start")
        jd = {k: v for k, v in (("$gte", t0), ("$lte", t1)) if v is not None}
        if jd:
            flt["candidate.jd"] = jd
        mag = {k: float(v) for k, v in (("$gte", self.mag_min), ("$lte", self.mag_max)) if v is not None}
        if mag:
            flt["candidate.magpsf"] = mag
        flt.update(parse_thresholds(self.scores))
        return flt

    def cone(self) -> tuple[float, float, float] | None:
        """(ra, dec, radius in arcsec) when a position is given."""
        if not self.position.strip():
            return None
        ra, dec = parse_position(self.position)
        return ra, dec, radius_arcsec(self.radius, self.radius_unit)
