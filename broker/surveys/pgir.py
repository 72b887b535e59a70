"""Palomar Gattini-IR: ZTF-like packets; cutouts are raw gzipped-FITS bytes; no fid, no fp_hists."""

from __future__ import annotations

from broker.surveys.base import Survey


class PGIR(Survey):
    name = "pgir"
    default_topic_pattern = r"^pgir_\d{8}$"
    # no fid in PGIR packets: non-detections are told apart by jd alone
    prv_keys = (("candid",), ("jd",))
