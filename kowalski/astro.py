"""Astronomy helpers shared by the broker, catalog tools and the API (vectorised with numpy)."""

from __future__ import annotations

import numpy as np


def deg2hms(ra_deg: float) -> str:
    """RA in degrees -> "HH:MM:SS.ssss" (Kowalski's format)."""
    h = (ra_deg % 360.0) / 15.0
    hh = int(h)
    m = (h - hh) * 60.0
    mm = int(m)
    ss = (m - mm) * 60.0
    if round(ss, 4) >= 60.0:
        ss, mm = 0.0, mm + 1
        if mm == 60:
            mm, hh = 0, (hh + 1) % 24
    return f"{hh:02d}:{mm:02d}:{ss:07.4f}"


def deg2dms(dec_deg: float) -> str:
    """Dec in degrees -> "±DD:MM:SS.sss" (no sign for positive, as Kowalski)."""
    sign = "-" if dec_deg < 0 else ""
    d = abs(dec_deg)
    dd = int(d)
    m = (d - dd) * 60.0
    mm = int(m)
    ss = (m - mm) * 60.0
    if round(ss, 3) >= 60.0:
        ss, mm = 0.0, mm + 1
        if mm == 60:
            mm, dd = 0, dd + 1
    return f"{sign}{dd:02d}:{mm:02d}:{ss:06.3f}"


def radec_geojson(ra_deg: float, dec_deg: float) -> dict:
    """GeoJSON point as stored for 2dsphere indexes: longitude = ra - 180."""
    return {"type": "Point", "coordinates": [float(ra_deg) - 180.0, float(dec_deg)]}


def position_document(ra_deg: float, dec_deg: float) -> dict:
    """The `coordinates` sub-document of catalog entries."""
    return {"radec_str": [deg2hms(ra_deg), deg2dms(dec_deg)], "radec_geojson": radec_geojson(ra_deg, dec_deg)}


def valid_radec(ra, dec) -> np.ndarray:
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90)
