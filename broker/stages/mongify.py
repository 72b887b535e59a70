"""Mongify stage: decoded packets -> Kowalski-compatible alert documents + per-alert history.

The document is the packet minus ``prv_candidates`` and ``fp_hists`` (they go to
``<SURVEY>_alerts_aux``), plus ``coordinates`` and an empty ``classifications``, with ``candid``
stored as int64. Coordinates are computed for the whole batch at once with numpy, using
Kowalski's own formulas (kowalski.md §3.3 step 2) so that stored values match Kowalski's:
sexagesimal strings by floor arithmetic, Galactic (l, b) with the Murray (1989) rotation matrix,
l in (-180, 180] as Kowalski leaves it, and geocentric mean ecliptic with obliquity 23.439291°.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from bson.int64 import Int64

from broker.stages import history

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


def coordinates(ra: Sequence[float], dec: Sequence[float]) -> list[dict]:
    """The ``coordinates`` sub-document for each (ra, dec) of a batch."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    strings = radec_strings(ra, dec)
    l, b = galactic(ra, dec)
    lam, beta = ecliptic(ra, dec)
    lon = (ra - 180.0).tolist()
    return [
        {
            "radec_str": s,
            "radec_geojson": {"type": "Point", "coordinates": [lo, la]},
            "l": gl,
            "b": gb,
            "geocentricmeanecliptic": {"lambda": el, "beta": eb},
        }
        for s, lo, la, gl, gb, el, eb in zip(strings, lon, dec.tolist(), l.tolist(), b.tolist(),
                                             lam.tolist(), beta.tolist())
    ]


def mongify(packets: list[dict], survey) -> tuple[list[dict], list[dict]]:
    """Packets -> (alert documents, histories).

    Each history is ``{"prv_candidates": [...], "fp_hists": [...]}`` for the aux collection:
    prv_candidates None-stripped and de-duplicated, fp_hists formatted as Kowalski does (see
    :mod:`broker.stages.history`). The packets' dicts are reused, not copied.
    """
    if not packets:
        return [], []
    radec = [survey.radec(p) for p in packets]
    coords = coordinates([r for r, _ in radec], [d for _, d in radec])
    docs, histories = [], []
    for packet, coord in zip(packets, coords):
        prv = packet.pop("prv_candidates", None) or []
        fp = packet.pop("fp_hists", None) or []
        packet[survey.alert_id] = Int64(packet[survey.alert_id])
        packet["coordinates"] = coord
        packet["classifications"] = {}
        docs.append(packet)
        histories.append({
            "prv_candidates": history.clean_prv(prv, survey),
            "fp_hists": history.format_fp_hists(fp, packet["candidate"], survey),
        })
    return docs, histories
