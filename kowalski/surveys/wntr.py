"""WINTER: object id field ``objectid`` (lower case), cutouts ``cutout_*`` raw bytes.

Alerts carry ``candidate.programid`` and both the API and filters restrict them by it (Kowalski
restricted only the API, which let filters see WINTER alerts the API hides); history points carry
no program id, so they are not restricted.
"""

from __future__ import annotations

from kowalski.surveys.base import Survey


class WNTR(Survey):
    name = "wntr"
    default_topic_pattern = r"^winter_\d{8}$"
    default_object_id = "objectid"
    cutout_fields = ("cutout_science", "cutout_template", "cutout_difference")
    programid_field = "candidate.programid"
    default_public_programids = (1,)
    history_window_days = 1000
