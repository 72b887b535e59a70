"""Astronomy helpers shared by the broker, catalog tools and the API (vectorised with numpy).

Kowalski's own formulas (kowalski.md §3.3 step 2), so stored values match Kowalski's:
sexagesimal strings by floor arithmetic, Galactic (l, b) with the Murray (1989) rotation matrix,
l in (-180, 180] as Kowalski leaves it, and geocentric mean ecliptic with obliquity 23.439291°.
"""

from __future__ import annotations

import numpy as np

# equatorial (J2000) -> Galactic rotation matrix, Murray (1989), as in Kowalski
RGE = np.array([
    [-0.054875539, -0.873437105, -0.483834992],
    [+0.494109454, -0.444829594, +0.746982249],
    [-0.867666136, -0.198076390, +0.455983795],
])
OBLIQUITY_DEG = 23.439291


def _sexagesimal(values: np.ndarray, unit_per_deg: float, decimals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|values| in degrees -> (units, minutes, seconds) by floor arithmetic, carrying rounding overflow.

    Kowalski prints e.g. "10:59:60.0000" when the seconds round up to 60; we carry instead.
    """
    x = np.abs(values) * unit_per_deg
    units = np.floor(x)
    minutes = np.floor((x - units) * 60.0)
    seconds = ((x - units) * 60.0 - minutes) * 60.0
    carry = np.round(seconds, decimals) >= 60.0
    seconds = np.where(carry, 0.0, seconds)
    minutes = minutes + carry
    carry = minutes >= 60.0
    minutes = np.where(carry, 0.0, minutes)
    units = units + carry
    return units, minutes, seconds


def radec_strings(ra: np.ndarray, dec: np.ndarray) -> list[list[str]]:
    """["HH:MM:SS.ssss", "DD:MM:SS.sss"] for each position ("-" only for negative dec)."""
    h, hm, hs = _sexagesimal(ra, 1.0 / 15.0, 4)
    h = h % 24
    d, dm, ds = _sexagesimal(dec, 1.0, 3)
    return [
        [f"{a:02.0f}:{b:02.0f}:{c:07.4f}", f"{'-' if s < 0 else ''}{e:02.0f}:{f:02.0f}:{g:06.3f}"]
        for a, b, c, s, e, f, g in zip(h.tolist(), hm.tolist(), hs.tolist(), dec.tolist(),
                                       d.tolist(), dm.tolist(), ds.tolist())
    ]


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(l, b) in degrees; l in (-180, 180] as Kowalski stores it."""
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    u = np.stack([np.cos(ra_r) * np.cos(dec_r), np.sin(ra_r) * np.cos(dec_r), np.sin(dec_r)])
    x, y, z = RGE @ u
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y)))


def ecliptic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geocentric mean ecliptic (lambda in [0, 360), beta) in degrees."""
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    eps = np.radians(OBLIQUITY_DEG)
    x = np.cos(dec_r) * np.cos(ra_r)
    y = np.cos(dec_r) * np.sin(ra_r)
    z = np.sin(dec_r)
    y_e = y * np.cos(eps) + z * np.sin(eps)
    z_e = -y * np.sin(eps) + z * np.cos(eps)
    lam = np.degrees(np.arctan2(y_e, x)) % 360.0
    beta = np.degrees(np.arcsin(np.clip(z_e, -1.0, 1.0)))
    return lam, beta


def radec_geojson(ra_deg: float, dec_deg: float) -> dict:
    """GeoJSON point as stored for 2dsphere indexes: longitude = ra - 180."""
    return {"type": "Point", "coordinates": [float(ra_deg) - 180.0, float(dec_deg)]}


def position_documents(ra, dec) -> list[dict]:
    """The `coordinates` sub-documents of catalog entries (vectorised over positions), with the
    HEALPix pixel id cone searches use (kowalski.sky)."""
    from kowalski.sky import pixels

    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    return [{"radec_str": s, "radec_geojson": radec_geojson(r, d), "healpix": h}
            for s, r, d, h in zip(radec_strings(ra, dec), ra.tolist(), dec.tolist(), pixels(ra, dec).tolist())]


def valid_radec(ra, dec) -> np.ndarray:
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90)
