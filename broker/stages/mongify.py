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
from kowalski.astro import ecliptic, galactic, radec_strings
from kowalski.sky import pixels

def coordinates(ra: Sequence[float], dec: Sequence[float]) -> list[dict]:
    """The ``coordinates`` sub-document for each (ra, dec) of a batch."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    strings = radec_strings(ra, dec)
    l, b = galactic(ra, dec)
    lam, beta = ecliptic(ra, dec)
    lon = (ra - 180.0).tolist()
    hpx = pixels(ra, dec).tolist()  # cone searches use it where the backend's geo index is not used
    return [
        {
            "radec_str": s,
            "radec_geojson": {"type": "Point", "coordinates": [lo, la]},
            "healpix": h,
            "l": gl,
            "b": gb,
            "geocentricmeanecliptic": {"lambda": el, "beta": eb},
        }
        for s, lo, la, h, gl, gb, el, eb in zip(strings, lon, dec.tolist(), hpx, l.tolist(), b.tolist(),
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
