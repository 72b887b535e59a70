"""HEALPix pixel ids of positions and the pixel ranges that cover a cone (cdshealpix).

Every positioned document (alerts, catalog sources) carries ``coordinates.healpix``: the NESTED
pixel id of its position at depth 16 (Nside 65,536; pixels about 3.2″ across; ids < 2^35). The
field has an ordinary B-tree index, named after the depth (``healpix_d16``), so a cone is a few
indexed range queries on any MongoDB-wire backend — the embedded database scans the whole
collection for ``$geoWithin`` — followed by an exact great-circle check.

Why depth 16: a 2″ cone is covered by a handful of depth-16 pixels (one or two ranges) and a 1°
cone, covered at a coarser depth and shifted to depth 16, by a few dozen ranges; finer pixels
would not narrow small cones further (alert positions are good to ~0.1″, cones are ≥ 1″), and
coarser ones would make a 2″ cone read ~16× more documents. Nested ids keep a coarse pixel's
children contiguous, which is what turns a cover into ranges.
"""

from __future__ import annotations

import math

import numpy as np

DEPTH = 16
FIELD = "coordinates.healpix"
INDEX_NAME = f"healpix_d{DEPTH}"
INDEX_PREFIX = "healpix_d"


def pixels(ra_deg, dec_deg) -> np.ndarray:
    """Nested pixel ids (int64) at :data:`DEPTH` for arrays of positions in degrees."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64)) % 360.0
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    return nested.lonlat_to_healpix(Longitude(ra, unit=u.deg), Latitude(dec, unit=u.deg), DEPTH).astype(np.int64)


def _cover_depth(radius_rad: float) -> int:
    """A depth whose pixels are about the cone's size, so the cover holds tens of cells, not millions."""
    pixel_rad = math.sqrt(4 * math.pi / (12 * 4**DEPTH))
    depth = DEPTH - max(0, math.ceil(math.log2(max(radius_rad, pixel_rad) / pixel_rad)) - 1)
    return max(0, min(DEPTH, depth))


def cone_ranges(ra_deg: float, dec_deg: float, radius_rad: float) -> list[tuple[int, int]]:
    """Half-open ranges ``[lo, hi)`` of depth-16 nested ids whose pixels cover the cone (merged,
    sorted). The cover may hold a little more than the cone: check distances after."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    if radius_rad >= math.pi:  # the whole sky
        return [(0, 12 * 4**DEPTH)]
    depth = _cover_depth(radius_rad)
    ipix, _, _ = nested.cone_search(Longitude(ra_deg % 360.0, unit=u.deg), Latitude(dec_deg, unit=u.deg),
                                    radius_rad * u.rad, depth=depth, flat=True)
    shift = 2 * (DEPTH - depth)
    ranges: list[tuple[int, int]] = []
    for p in np.sort(ipix.astype(np.int64)).tolist():
        lo, hi = p << shift, (p + 1) << shift
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def distance_rad(ra1_deg, dec1_deg, ra2_deg, dec2_deg) -> np.ndarray:
    """Great-circle distances (haversine, stable for small angles) in radians."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
