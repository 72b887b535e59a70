"""Kowalski's GeoJSON contours of a credible region, traced from its MOC.

Kowalski draws contours with ligo.skymap on a flat Nside-512 map and stores them as a GeoJSON
``MultiPolygon`` with ``lon = ra - 180`` (MongoDB's longitude range), each polygon its exterior
ring only. Clients read them (to plot, or for ``$geoWithin`` on MongoDB). Here the boundary of the
region's HEALPix cells is traced exactly: every cell edge not shared with another cell of the
region is on the boundary, and chaining those directed edges gives rings (counter-clockwise for
outer boundaries, as GeoJSON wants). Holes are left out, as in Kowalski's contours; queries use
the MOC, which has them.

The region is traced at its own order, made coarser (a slightly larger region) only while it would
have more than :data:`MAX_CELLS` cells, so a contour stays a few thousand vertices.
"""

from __future__ import annotations

import numpy as np

MAX_CELLS = 60_000
_SCALE = 1e7  # vertex keys: coordinates rounded to 1e-7 degree


def trace_order(moc) -> int:
    """The order to trace ``moc`` at: its own, or the finest with at most MAX_CELLS cells."""
    uniq = np.asarray(moc.uniq_hpx, dtype=np.int64)
    from kowalski.skymaps import uniq_orders

    orders = uniq_orders(uniq)
    order = int(moc.max_order)
    while order > 0:
        n = np.where(orders <= order, np.power(4.0, order - np.minimum(orders, order)), 1.0).sum()
        if n <= MAX_CELLS:
            break
        order -= 1
    return order


def rings(moc) -> list[list[tuple[float, float]]]:
    """Outer boundary rings of the MOC as closed lists of (ra, dec) in degrees."""
    from cdshealpix import nested

    order = trace_order(moc)
    flat = moc.degrade_to_order(order) if order < moc.max_order else moc
    ipix = np.asarray(flat.flatten(), dtype=np.int64)
    if ipix.size == 0:
        return []
    lon, lat = nested.vertices(ipix, order)  # (n, 4): S, E, N, W
    lon, lat = np.asarray(lon.deg), np.asarray(lat.deg)
    klat = np.rint(lat * _SCALE).astype(np.int64)
    klon = np.rint((lon % 360.0) * _SCALE).astype(np.int64) % int(360 * _SCALE)
    klon = np.where(np.abs(klat) >= int(90 * _SCALE) - 1, 0, klon)  # the poles have one longitude
    keys = klon * (4 * 10**9) + (klat + 2 * 10**9)
    uniq_keys, vid = np.unique(keys.ravel(), return_inverse=True)
    vid = vid.reshape(-1, 4)
    first = np.zeros(uniq_keys.size, dtype=np.int64)
    first[vid.ravel()] = np.arange(vid.size)
    vlon, vlat = lon.ravel()[first], lat.ravel()[first]
    nv = np.int64(uniq_keys.size)
    a = vid.ravel()
    b = np.roll(vid, -1, axis=1).ravel()  # S->E, E->N, N->W, W->S: counter-clockwise
    codes = a * nv + b
    boundary = ~np.isin(codes, b * nv + a)
    nxt: dict[int, list[int]] = {}
    for s, e in zip(a[boundary].tolist(), b[boundary].tolist()):
        nxt.setdefault(s, []).append(e)
    out = []
    while nxt:
        start = next(iter(nxt))
        ring, v = [start], start
        while True:
            targets = nxt.get(v)
            if not targets:
                break
            w = targets.pop()
            if not targets:
                del nxt[v]
            v = w
            ring.append(v)
            if v == start:
                break
        if len(ring) >= 4 and ring[0] == ring[-1]:
            pts = _simplify(vlon[ring], vlat[ring])
            if len(pts) >= 4 and _signed_area(pts) >= 0:  # outer boundaries only (holes are clockwise)
                out.append(pts)
    return out


def _unwrap(lon: np.ndarray) -> np.ndarray:
    return np.degrees(np.unwrap(np.radians(lon)))


def _simplify(lon: np.ndarray, lat: np.ndarray) -> list[tuple[float, float]]:
    """Drop vertices where the ring goes straight on (runs of cell edges along one line)."""
    x, y = _unwrap(lon), lat
    p = np.stack([x, y], axis=1)[:-1]
    prev, nxt = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
    d1, d2 = p - prev, nxt - p
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    scale = np.hypot(*d1.T) * np.hypot(*d2.T)
    keep = np.abs(cross) > 1e-9 * np.maximum(scale, 1e-300)
    if keep.sum() < 3:
        keep[:] = True
    pts = [(float(a % 360.0), float(b)) for a, b in p[keep]]
    return pts + [pts[0]]


def _signed_area(pts: list[tuple[float, float]]) -> float:
    """Planar signed area in (unwrapped lon, lat): > 0 counter-clockwise. A ring around a pole
    does not close in unwrapped longitude; it is an outer boundary (counted as positive)."""
    lon = _unwrap(np.array([p[0] for p in pts]))
    if abs(lon[-1] - lon[0]) > 180:
        return 1.0
    lat = np.array([p[1] for p in pts])
    return 0.5 * float(np.sum(lon[:-1] * lat[1:] - lon[1:] * lat[:-1]))


def geojson(moc, level: float) -> dict:
    """``{"type": "MultiPolygon", "properties": {"credible_level": L}, "coordinates": ...}`` with
    ``lon = ra - 180`` (Kowalski's convention)."""
    polys = [[[[round(ra - 180.0, 6), round(dec, 6)] for ra, dec in ring]] for ring in rings(moc)]
    return {"type": "MultiPolygon", "properties": {"credible_level": level}, "coordinates": polys}


def center_point(ra: float, dec: float) -> dict:
    return {"type": "Point", "coordinates": [round(ra - 180.0, 6), round(dec, 6)],
            "properties": {"credible_level": 0}}
