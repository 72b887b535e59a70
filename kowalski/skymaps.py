"""Sky localisations (gravitational-wave and GRB skymaps) as multi-order HEALPix maps, and their
credible regions as MOCs.

Every input form Kowalski accepts becomes one :class:`Skymap` — NUNIQ cell ids (nested, any order
up to 29) with a probability density per steradian: a multi-order map as given, a FITS file (the
LIGO/Virgo/KAGRA multi-order format, or a flat NESTED/RING map such as Fermi GBM's), a Gaussian
error circle (Kowalski's 4-sigma disc, 16 pixels across the radius), a polygon or an ellipse
(uniform inside, as Kowalski's).

Credible regions are computed here with numpy and mocpy rather than ligo.skymap: the greedy rule
(the densest cells first until they hold the level) is a sort and a cumulative sum over
density x area, while ligo.skymap pulls in healpy, a compiled BAYESTAR and a large scientific
stack for the API process. Ties are kept together: the L% region is the set of cells whose
density is at least that of the cell where the cumulative probability reaches L, i.e. the
smallest region of the form {density >= t} holding at least L% — so the 90% region of a uniform
polygon or ellipse is the whole shape, not an arbitrary 90% of its pixels.

A region is stored as a MOC (depth-29 nested ranges, exact at the map's own resolution); a
position is inside when its cell at the MOC's order is. Queries use it through the archive's
depth-16 pixel index (see :mod:`kowalski.sky`), then the exact test.
"""

from __future__ import annotations

import base64
import gzip
import io
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from kowalski.sky import distance_rad

MAX_ORDER = 29
MAX_CELLS = 50_331_648  # a flat Nside 2048 map
MAX_STORED_RANGES = 100_000  # a region's MOC stays well under MongoDB's 16 MB document limit
FULL_SKY_DEG2 = 4 * math.pi * (180 / math.pi) ** 2


class SkymapError(ValueError):
    """The input is not a usable skymap (answered as a 4xx, nothing stored)."""


@dataclass
class Skymap:
    localization_name: str
    uniq: np.ndarray          # int64 NUNIQ ids
    probdensity: np.ndarray   # float64, per steradian
    meta: dict = field(default_factory=dict)  # from FITS headers: dateobs, object, distance

    @property
    def orders(self) -> np.ndarray:
        return uniq_orders(self.uniq)

    @property
    def ipix(self) -> np.ndarray:
        o = self.orders
        return self.uniq - (np.int64(4) << (2 * o.astype(np.int64)))

    def probabilities(self) -> np.ndarray:
        """Probability of each cell (density x area), normalised to 1."""
        p = self.probdensity * cell_area_sr(self.orders)
        return p / p.sum()


# --- NUNIQ helpers -------------------------------------------------------------------------------

def uniq_orders(uniq: np.ndarray) -> np.ndarray:
    """The order of each NUNIQ id (uniq = 4·4^order + ipix)."""
    u = np.asarray(uniq, dtype=np.int64)
    o = (np.floor(np.log2(np.maximum(u, 1).astype(np.float64))).astype(np.int64) - 2) // 2
    # correct float rounding near powers of two
    o = np.where((np.int64(4) << (2 * (o + 1))) <= u, o + 1, o)
    o = np.where((np.int64(4) << (2 * np.maximum(o, 0))) > u, o - 1, o)
    return o


def cell_area_sr(orders: np.ndarray) -> np.ndarray:
    return 4 * math.pi / (12.0 * np.power(4.0, np.asarray(orders, dtype=np.float64)))


def _to_uniq(ipix: np.ndarray, order: int) -> np.ndarray:
    return np.asarray(ipix, dtype=np.int64) + (np.int64(4) << (2 * int(order)))


def _order_for_resolution(res_deg: float, lo: int = 0, hi: int = MAX_ORDER) -> int:
    """The coarsest order whose pixels are at most ``res_deg`` across."""
    if not res_deg > 0:
        return hi
    base = math.degrees(math.sqrt(4 * math.pi / 12))
    return int(min(hi, max(lo, math.ceil(math.log2(base / res_deg)))))


def check(sm: Skymap) -> Skymap:
    """Refuse what is not a probability map over non-overlapping HEALPix cells."""
    if sm.uniq.ndim != 1 or sm.uniq.shape != sm.probdensity.shape:
        raise SkymapError("uniq and probdensity must be lists of the same length")
    if sm.uniq.size == 0:
        raise SkymapError("the skymap has no cells")
    if sm.uniq.size > MAX_CELLS:
        raise SkymapError(f"the skymap has {sm.uniq.size} cells, more than {MAX_CELLS}")
    if (sm.uniq < 4).any():
        raise SkymapError("uniq ids must be >= 4 (NUNIQ: 4·4^order + ipix)")
    orders = sm.orders
    if (orders > MAX_ORDER).any():
        raise SkymapError(f"uniq ids must be of order <= {MAX_ORDER}")
    if not np.isfinite(sm.probdensity).all() or (sm.probdensity < 0).any():
        raise SkymapError("probdensity must be finite and >= 0")
    shift = (2 * (MAX_ORDER - orders)).astype(np.int64)
    lo = sm.ipix << shift
    hi = (sm.ipix + 1) << shift
    i = np.argsort(lo, kind="stable")
    overlap = np.flatnonzero(lo[i][1:] < hi[i][:-1])
    if overlap.size:
        k = overlap[0]
        raise SkymapError(f"skymap cells overlap (uniq {int(sm.uniq[i][k])} and {int(sm.uniq[i][k + 1])})")
    if not (sm.probdensity * cell_area_sr(orders)).sum() > 0:
        raise SkymapError("the skymap's total probability is zero")
    return sm


# --- input forms ---------------------------------------------------------------------------------

def _name(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise SkymapError("localization_name must be a non-empty string of at most 256 characters")
    return value.strip()


def _number(d: dict, key: str, lo: float | None = None, hi: float | None = None) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SkymapError(f"skymap.{key} must be a number")
    v = float(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise SkymapError(f"skymap.{key} must be within [{lo}, {hi}], not {v}")
    return v


def from_multiorder(name, uniq, probdensity) -> Skymap:
    try:
        u = np.asarray(uniq)
        p = np.asarray(probdensity)
        if u.dtype.kind not in "iu" or (u.dtype.kind == "u" and u.size and u.max() >= 2**63):
            raise TypeError
        u = u.astype(np.int64)
        if p.dtype.kind not in "iuf":
            raise TypeError
        p = p.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SkymapError("uniq must be a list of integers and probdensity a list of numbers") from None
    return check(Skymap(_name(name), u, p))


def from_cone(ra: float, dec: float, error: float, n_sigma: float = 4.0) -> Skymap:
    """Kowalski's error circle: a Gaussian of sigma ``error`` degrees over the 4-sigma disc, at
    a resolution of 16 pixels across the radius."""
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    name = f"{ra:.5f}_{dec:.5f}_{error:.5f}"
    order = _order_for_resolution(error / 16, hi=MAX_ORDER - 2)  # cdshealpix searches 2 orders deeper
    radius = min(math.pi, math.radians(n_sigma * error))
    ipix, _, _ = nested.cone_search(Longitude(ra, u.deg), Latitude(dec, u.deg), radius * u.rad, depth=order, flat=True)
    ipix = np.unique(ipix.astype(np.int64))
    lon, lat = nested.healpix_to_lonlat(ipix, order)
    d = distance_rad(ra, dec, lon.deg, lat.deg)
    dens = np.exp(-0.5 * np.square(d / math.radians(error)))
    if not dens.sum() > 0:  # pixels much larger than the error: the nearest one holds it all
        dens = (d == d.min()).astype(np.float64)
    dens /= dens.sum() * float(cell_area_sr(order))
    return check(Skymap(name, _to_uniq(ipix, order), dens))


def _uniform(name: str, moc) -> Skymap:
    uniq = np.asarray(moc.uniq_hpx, dtype=np.int64)  # mocpy's NUNIQ ids of the MOC's cells
    if uniq.size == 0:
        raise SkymapError("the region covers no HEALPix cell")
    area = cell_area_sr(uniq_orders(uniq))
    return check(Skymap(name, uniq, np.full(uniq.size, 1.0 / area.sum())))


def from_polygon(name, polygon) -> Skymap:
    """Uniform inside a polygon of (ra, dec) vertices in degrees."""
    import astropy.units as u
    from mocpy import MOC

    if not isinstance(polygon, list) or len(polygon) < 3 or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in p)
            for p in polygon):
        raise SkymapError("skymap.polygon must be a list of at least 3 [ra, dec] pairs in degrees")
    arr = np.asarray(polygon, dtype=np.float64)
    if (np.abs(arr[:, 1]) > 90).any():
        raise SkymapError("polygon declinations must be within [-90, 90]")
    extent = max(distance_rad(arr[0, 0], arr[0, 1], arr[:, 0], arr[:, 1]).max(), 1e-9)
    order = _order_for_resolution(math.degrees(extent) / 64, lo=4, hi=20)
    moc = MOC.from_polygon(arr[:, 0] % 360 * u.deg, arr[:, 1] * u.deg, max_depth=order)
    return _uniform(_name(name), moc)


def from_ellipse(name, ra: float, dec: float, amaj: float, amin: float, phi: float) -> Skymap:
    """Uniform inside an ellipse: semi-axes ``amaj`` >= ``amin`` > 0 and position angle ``phi``
    (east of north), all in degrees."""
    import astropy.units as u
    from mocpy import MOC

    if not (amaj > 0 and amin > 0):
        raise SkymapError(f"ellipse semi-axes must be > 0 degrees (amaj={amaj}, amin={amin})")
    if amin > amaj:
        raise SkymapError(f"amin ({amin}) must not exceed amaj ({amaj})")
    if amaj >= 90:
        raise SkymapError(f"amaj must be less than 90 degrees, not {amaj}")
    # 8 pixels across the minor axis, but at most ~20,000 pixels along the outline (a long thin
    # ellipse would otherwise be millions of cells)
    order = _order_for_resolution(max(amin / 8, 2 * math.pi * amaj / 20_000), lo=4, hi=20)
    moc = MOC.from_elliptical_cone(lon=(ra % 360) * u.deg, lat=dec * u.deg, a=amaj * u.deg, b=amin * u.deg,
                                   pa=(phi % 180) * u.deg, max_depth=order)
    return _uniform(_name(name), moc)


def read_fits(data: bytes, name: str) -> Skymap:
    """A HEALPix skymap from FITS bytes (optionally gzipped): multi-order (ORDERING = NUNIQ, with
    UNIQ and PROBDENSITY) or flat (ORDERING = NESTED or RING, probability per pixel)."""
    from astropy.io import fits

    name = _name(name)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise SkymapError(f"cannot read the FITS file: bad gzip data ({exc})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(io.BytesIO(data), memmap=False)
            hdul.verify("silentfix")
            found = []
            for hdu in hdul:
                ordering = str(hdu.header.get("ORDERING", "")).upper()
                if isinstance(hdu, fits.BinTableHDU) and ordering in ("NUNIQ", "NESTED", "RING"):
                    return _from_table(hdu, ordering, name, hdul[0].header)
                shape = "x".join(map(str, hdu.data.shape)) if getattr(hdu, "data", None) is not None \
                    and hasattr(hdu.data, "shape") else "empty"
                found.append(f"{type(hdu).__name__} {shape}")
    except SkymapError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on broken files
        raise SkymapError(f"cannot read the FITS file: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    raise SkymapError("not a HEALPix skymap: no binary table with ORDERING = NUNIQ, NESTED or RING "
                      f"(found: {', '.join(found) or 'nothing'})")


def _from_table(hdu, ordering: str, name: str, primary) -> Skymap:
    header = hdu.header
    cols = [c.upper() for c in hdu.columns.names]
    meta = _fits_meta(header, primary)
    if ordering == "NUNIQ":
        if "UNIQ" not in cols or "PROBDENSITY" not in cols:
            raise SkymapError(f"multi-order skymap without UNIQ and PROBDENSITY columns (has {', '.join(cols)})")
        uniq = np.asarray(hdu.data.field(cols.index("UNIQ")), dtype=np.int64).ravel()
        dens = np.asarray(hdu.data.field(cols.index("PROBDENSITY")), dtype=np.float64).ravel()
        return check(Skymap(name, uniq, dens, meta))
    nside = header.get("NSIDE")
    col = next((cols.index(c) for c in ("PROB", "PROBABILITY") if c in cols), 0)
    prob = np.asarray(hdu.data.field(col), dtype=np.float64).ravel()
    if not isinstance(nside, int) or nside < 1 or nside & (nside - 1):
        nside = int(round(math.sqrt(prob.size / 12)))
    order = int(round(math.log2(nside))) if nside >= 1 else -1
    if order < 0 or order > MAX_ORDER or prob.size != 12 * 4**order:
        raise SkymapError(f"flat HEALPix map of {prob.size} pixels does not match NSIDE={header.get('NSIDE')}")
    if prob.size > MAX_CELLS:
        raise SkymapError(f"the skymap has {prob.size} pixels, more than {MAX_CELLS}")
    prob = np.where(np.isfinite(prob), prob, 0.0)  # UNSEEN/NaN pixels hold no probability
    ipix = np.arange(prob.size, dtype=np.int64)
    if ordering == "RING":
        from cdshealpix import nested, ring
        lon, lat = ring.healpix_to_lonlat(ipix, nside)
        nest = nested.lonlat_to_healpix(lon, lat, order).astype(np.int64)
        dens = np.empty_like(prob)
        dens[nest] = prob
    else:
        dens = prob
    dens = np.maximum(dens, 0.0) / float(cell_area_sr(order))
    return check(Skymap(name, _to_uniq(ipix, order), dens, meta))


def _fits_meta(header, primary) -> dict:
    meta: dict = {}
    for h in (primary, header):
        for key, out in (("DATE-OBS", "dateobs"), ("OBJECT", "object"), ("INSTRUME", "instruments"),
                         ("DISTMEAN", "distmean"), ("DISTSTD", "diststd")):
            v = h.get(key)
            if v not in (None, ""):
                meta[out] = v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    return meta


def from_fits_content(name, content) -> Skymap:
    if not isinstance(content, str) or not content:
        raise SkymapError("skymap.content must be a base64 string of a FITS file")
    try:
        data = base64.b64decode(content, validate=False)
    except (ValueError, TypeError):
        raise SkymapError("skymap.content is not valid base64") from None
    return read_fits(data, _name(name))


def parse(spec: dict) -> Skymap:
    """Every form of the ``skymap`` object of ``PUT /api/skymap`` but ``{url}`` (fetched by the
    caller, then given to :func:`read_fits`)."""
    if not isinstance(spec, dict):
        raise SkymapError("skymap must be an object")
    keys = set(spec)
    if {"uniq", "probdensity"} <= keys:
        return from_multiorder(spec.get("localization_name"), spec["uniq"], spec["probdensity"])
    if "content" in keys:
        return from_fits_content(spec.get("localization_name"), spec["content"])
    if "polygon" in keys:
        return from_polygon(spec.get("localization_name"), spec["polygon"])
    if {"amaj", "amin"} <= keys:
        return from_ellipse(spec.get("localization_name"), _number(spec, "ra", -360, 720),
                            _number(spec, "dec", -90, 90), _number(spec, "amaj"), _number(spec, "amin"),
                            _number(spec, "phi") if "phi" in spec else 0.0)
    if {"ra", "dec", "error"} <= keys:
        error = _number(spec, "error")
        if not error > 0:
            raise SkymapError(f"skymap.error must be > 0 degrees, not {error}")
        return from_cone(_number(spec, "ra", -360, 720), _number(spec, "dec", -90, 90), min(error, 180.0))
    raise SkymapError("skymap must be one of {localization_name, uniq, probdensity}, {url}, "
                      "{localization_name, content}, {ra, dec, error}, {localization_name, polygon} or "
                      "{localization_name, ra, dec, amaj, amin, phi}")


# --- credible regions ----------------------------------------------------------------------------

@dataclass
class Region:
    level: float
    moc: object                 # mocpy.MOC
    probability: float          # what the region holds (>= level/100)
    area_deg2: float

    def document(self) -> dict:
        ranges = np.asarray(self.moc.to_depth29_ranges, dtype=np.uint64).astype(np.int64)
        return {"max_order": int(self.moc.max_order), "ranges": ranges.tolist(),
                "probability": round(float(self.probability), 6), "area_deg2": round(self.area_deg2, 6)}


def credible_region(sm: Skymap, level: float) -> Region:
    """The smallest region {density >= t} holding at least ``level`` percent (see module doc)."""
    from mocpy import MOC

    p = sm.probabilities()
    order = np.lexsort((sm.uniq, -sm.probdensity))  # densest first, ties in a fixed order
    cum = np.cumsum(p[order])
    k = min(int(np.searchsorted(cum, level / 100.0 - 1e-12)), order.size - 1)
    t = sm.probdensity[order[k]]
    keep = (sm.probdensity >= t) & (p > 0)
    if not keep.any():
        keep = p > 0
    orders = sm.orders[keep]
    moc = MOC.from_healpix_cells(sm.ipix[keep].astype(np.uint64), orders.astype(np.uint8), int(orders.max()))
    while len(moc.to_depth29_ranges) > MAX_STORED_RANGES and moc.max_order > 0:
        moc = moc.degrade_to_order(moc.max_order - 1)  # a slightly larger region that fits in a document
    return Region(level, moc, float(p[keep].sum()), float(moc.sky_fraction) * FULL_SKY_DEG2)


def region_moc(doc: dict):
    """The MOC of a stored region (``Region.document()``)."""
    from mocpy import MOC

    ranges = np.asarray(doc.get("ranges") or np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2).astype(np.uint64)
    return MOC.from_depth29_ranges(int(doc["max_order"]), ranges)


def contains(moc, ra_deg, dec_deg) -> np.ndarray:
    """Whether each position (degrees) lies in the MOC (its cell at the MOC's order is in it);
    NaN positions are outside."""
    import astropy.units as u

    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    out = np.zeros(ra.shape, dtype=bool)
    if ok.any():
        out[ok] = np.asarray(moc.contains_lonlat((ra[ok] % 360) * u.deg, dec[ok] * u.deg), dtype=bool)
    return out


def center(sm: Skymap) -> tuple[float, float]:
    """(ra, dec) of the densest cell's centre."""
    from cdshealpix import nested

    i = int(np.argmax(sm.probdensity))
    lon, lat = nested.healpix_to_lonlat(sm.ipix[i:i + 1], int(sm.orders[i]))
    return float(lon.deg[0]), float(lat.deg[0])


def cover_ranges(region_doc: dict, depth: int, max_ranges: int) -> list[tuple[int, int]]:
    """Half-open ranges of depth-``depth`` nested ids covering a stored region: at most
    ``max_ranges`` of them, made by closing the smallest gaps first (fewest extra pixels), so a
    region is a bounded number of indexed range queries whatever its shape."""
    r = np.asarray(region_doc.get("ranges") or np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2)
    if r.size == 0:
        return []
    shift = 2 * (MAX_ORDER - depth)
    lo = r[:, 0] >> shift
    hi = (r[:, 1] + (np.int64(1) << shift) - 1) >> shift
    # merge what touches at this depth
    starts = np.concatenate(([True], lo[1:] > hi[:-1]))
    lo, hi = lo[starts], np.maximum.reduceat(hi, np.flatnonzero(starts))
    if lo.size > max_ranges:
        gaps = lo[1:] - hi[:-1]
        close = np.zeros(gaps.size, dtype=bool)
        close[np.argsort(gaps, kind="stable")[:lo.size - max_ranges]] = True
        keep = np.concatenate(([True], ~close))
        idx = np.flatnonzero(keep)
        hi = np.concatenate((hi[idx[1:] - 1], hi[-1:]))
        lo = lo[idx]
    return list(zip(lo.tolist(), hi.tolist()))

