"""Multi-order skymaps built from a published localisation's parameters, and FITS writing.

No package on this machine ships a real skymap file (mocpy's test skymap is in its source tree,
not its wheel; ligo.skymap is not installed), so tests and the benchmark build one the way
BAYESTAR lays it out: a 2-D Gaussian on the sky (elongated, at a position angle) on an
adaptively refined multi-order grid — the densest cells split until the map has about
``target_cells`` cells — written as a LIGO/Virgo/KAGRA multi-order FITS file with the 3-D
distance columns (DISTMU, DISTSIGMA, DISTNORM) and DISTMEAN/DISTSTD/DATE-OBS/OBJECT headers.

:data:`GW170817` is LIGO/Virgo's localisation of GW170817 (GCN 21513: 90% area 28 deg², centred
near NGC 4993, distance 40 ± 8 Mpc) approximated by such a Gaussian.
"""

from __future__ import annotations

import io
import math

import numpy as np

from kowalski.skymaps import Skymap, _to_uniq, cell_area_sr, uniq_orders

# 2-D Gaussian with a 90% region of pi * 2 ln(10) * s_maj * s_min = 28 deg^2, axis ratio 4
GW170817 = {"name": "GW170817.multiorder.fits", "object": "GW170817", "dateobs": "2017-08-17T12:41:04.4",
            "ra": 197.45, "dec": -23.38, "sigma_maj": 2.78, "sigma_min": 0.70, "pa": 60.0,
            "distmean": 40.0, "diststd": 8.0}


def gaussian(ra: float, dec: float, sigma_maj: float, sigma_min: float, pa: float, name: str = "gaussian",
             base_order: int = 4, max_order: int = 12, target_cells: int = 20_000, meta: dict | None = None) -> Skymap:
    """An elongated Gaussian localisation on an adaptively refined multi-order grid."""
    from cdshealpix import nested

    def density(ipix, order):
        lon, lat = nested.healpix_to_lonlat(ipix, order)
        return _gauss(ra, dec, sigma_maj, sigma_min, pa, lon.deg, lat.deg)

    orders = np.full(12 * 4**base_order, base_order, dtype=np.int64)
    ipix = np.arange(orders.size, dtype=np.int64)
    for order in range(base_order, max_order):
        at = orders == order
        prob = np.zeros(orders.size)
        prob[at] = density(ipix[at], order) * cell_area_sr(order)
        budget = max(0, (target_cells - orders.size) // (3 * (max_order - order)))
        if budget == 0:
            break
        cand = np.flatnonzero(at & (prob > 0))
        split = cand[np.argsort(-prob[cand], kind="stable")[:budget]]
        keep = np.ones(orders.size, dtype=bool)
        keep[split] = False
        children = (ipix[split][:, None] * 4 + np.arange(4)).ravel()
        ipix = np.concatenate([ipix[keep], children])
        orders = np.concatenate([orders[keep], np.full(children.size, order + 1)])
    dens = np.empty(orders.size)
    for o in np.unique(orders):
        m = orders == o
        dens[m] = density(ipix[m], int(o))
    uniq = np.concatenate([_to_uniq(ipix[orders == o], int(o)) for o in np.unique(orders)])
    dens = np.concatenate([dens[orders == o] for o in np.unique(orders)])
    i = np.argsort(uniq)
    uniq, dens = uniq[i], dens[i]
    dens /= (dens * cell_area_sr(uniq_orders(uniq))).sum()
    return Skymap(name, uniq, dens, dict(meta or {}))


def _gauss(ra0, dec0, s_maj, s_min, pa, ra, dec) -> np.ndarray:
    """Density of a 2-D Gaussian in the tangent plane at (ra0, dec0); ``pa`` east of north."""
    r0, d0, r, d = (np.radians(x) for x in (ra0, dec0, np.asarray(ra), np.asarray(dec)))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    xi = np.cos(d) * np.sin(r - r0) / cosc        # east
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - r0)) / cosc  # north
    p = math.radians(pa)
    along = eta * math.cos(p) + xi * math.sin(p)
    across = -eta * math.sin(p) + xi * math.cos(p)
    q = (along / math.radians(s_maj)) ** 2 + (across / math.radians(s_min)) ** 2
    return np.where(cosc > 0, np.exp(-0.5 * q), 0.0)


def published(event: dict = GW170817, **kw) -> Skymap:
    return gaussian(event["ra"], event["dec"], event["sigma_maj"], event["sigma_min"], event["pa"], name=event["name"],
                    meta={"dateobs": event["dateobs"], "object": event["object"], "distmean": event["distmean"],
                          "diststd": event["diststd"]}, **kw)


def to_fits(sm: Skymap) -> bytes:
    """A multi-order FITS file (ORDERING = NUNIQ), with 3-D distance columns when ``sm.meta`` has
    distmean/diststd."""
    from astropy.io import fits

    cols = [fits.Column("UNIQ", "K", array=sm.uniq), fits.Column("PROBDENSITY", "D", unit="sr-1", array=sm.probdensity)]
    mu, sd = sm.meta.get("distmean"), sm.meta.get("diststd")
    if mu is not None and sd is not None:
        n = sm.uniq.size
        cols += [fits.Column("DISTMU", "D", unit="Mpc", array=np.full(n, float(mu))),
                 fits.Column("DISTSIGMA", "D", unit="Mpc", array=np.full(n, float(sd))),
                 fits.Column("DISTNORM", "D", unit="Mpc-2", array=np.full(n, 1.0 / (float(mu) ** 2 + float(sd) ** 2)))]
    hdu = fits.BinTableHDU.from_columns(cols)
    h = hdu.header
    h["PIXTYPE"], h["ORDERING"], h["COORDSYS"] = "HEALPIX", "NUNIQ", "C"
    h["MOCORDER"] = int(uniq_orders(sm.uniq).max())
    for key, meta in (("DATE-OBS", "dateobs"), ("OBJECT", "object"), ("DISTMEAN", "distmean"), ("DISTSTD", "diststd")):
        if sm.meta.get(meta) is not None:
            h[key] = sm.meta[meta]
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()
