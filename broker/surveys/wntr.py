"""WINTER: object id field ``objectid`` (lower case), cutouts ``cutout_*`` raw bytes."""

from __future__ import annotations

from broker.surveys.base import Survey


class WNTR(Survey):
    name = "wntr"
    default_topic_pattern = r"^winter_\d{8}$"
    default_object_id = "objectid"
    cutout_fields = ("cutout_science", "cutout_template", "cutout_difference")
