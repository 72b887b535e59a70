"""Palomar Gattini-IR: ZTF-like packets; cutouts are raw gzipped-FITS bytes; no fid, no fp_hists,
no program ids (all public)."""

from __future__ import annotations

from kowalski.surveys.base import Survey


class PGIR(Survey):
    name = "pgir"
    default_topic_pattern = r"^pgir_\d{8}$"
    # no fid in PGIR packets: non-detections are told apart by jd alone
    prv_keys = (("candid",), ("jd",))
    history_window_days = 1000
    cutout_layout = "pgir"  # Kowalski's rot90(fliplr, 3) when the stamp has no usable WCS
