"""A survey defined outside ``kowalski/surveys``, as an operator would add one: this module plus a
``surveys.demo`` block in config (``definition: "tests.surveys.demo_survey:DEMO"``).

Its packets are ZTF's Avro alerts under other names, so that every name the rest of the system
uses must come from this definition: the object id is ``sourceName``, the program id
``candidate.program`` (and ``program`` on history points), the cutouts are raw gzipped FITS under
``stamp_*``. Program 1 is public.
"""

from __future__ import annotations

from kowalski.surveys import Survey

ZTF_CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


class DEMO(Survey):
    name = "demo"
    default_topic_pattern = r"^demo_\d{8}$"
    default_object_id = "sourceName"
    cutout_fields = ("stamp_science", "stamp_reference", "stamp_difference")
    programid_field = "candidate.program"
    history_programid_field = "program"
    history_arrays = ("prv_candidates",)
    default_public_programids = (1,)
    history_window_days = 10  # ZTF packets carry 30 days: the window must bite

    def normalize(self, record: dict) -> dict:
        doc = {k: v for k, v in record.items() if k not in ("objectId", "fp_hists", *ZTF_CUTOUTS)}
        doc["sourceName"] = record["objectId"]
        doc["candidate"] = _renamed(record["candidate"])
        doc["prv_candidates"] = [_renamed(p) for p in record.get("prv_candidates") or []]
        for ours, ztf in zip(self.cutout_fields, ZTF_CUTOUTS):
            doc[ours] = (record.get(ztf) or {}).get("stampData")
        return doc


def _renamed(point: dict) -> dict:
    out = {k: v for k, v in point.items() if k != "programid"}
    out["program"] = point.get("programid")
    return out
