"""Zwicky Transient Facility: the reference survey (Kowalski's data model is ZTF's)."""

from __future__ import annotations

from kowalski.surveys.base import SkyPortalMapping, Survey


class ZTF(Survey):
    name = "ztf"
    default_topic_pattern = r"^ztf_\d{8}_programid\d+$"
    # forced photometry of schema >= 4: difference-image flux, its error and the zero point
    fp_flux = ("forcediffimflux", "forcediffimfluxunc", "magzpsci")
    fp_good = ("procstatus", "0")
    bands = {1: "g", 2: "r", 3: "i"}
    pixel_scale_arcsec = 1.012
    # program 1 is public, 2 the partnership's, 3 (and 0) Caltech's
    programid_field = "candidate.programid"
    history_programid_field = "programid"
    history_arrays = ("prv_candidates", "fp_hists")
    default_public_programids = (1,)
    skyportal = SkyPortalMapping(
        bands={1: "ztfg", 2: "ztfr", 3: "ztfi"},
        streams={"ZTF Public": (1,), "ZTF Public+Partnership": (2,), "ZTF Public+Partnership+Caltech": (0, 3)},
        instrument="ZTF",
    )
