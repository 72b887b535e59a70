"""Zwicky Transient Facility: the reference survey (Kowalski's data model is ZTF's)."""

from __future__ import annotations

from broker.surveys.base import Survey


class ZTF(Survey):
    name = "ztf"
    default_topic_pattern = r"^ztf_\d{8}_programid\d+$"
    # forced photometry of schema >= 4: difference-image flux, its error and the zero point
    fp_flux = ("forcediffimflux", "forcediffimfluxunc", "magzpsci")
