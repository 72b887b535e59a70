"""TURBO: ZTF-like candidate schema and program ids, no fp_hists, raw-bytes cutouts.

Its writer schemas declare ``"default": null`` on non-nullable fields, which fastavro >= 1.7
rejects; :func:`kowalski.surveys.avro.read_container` repairs such schemas, so nothing here.
"""

from __future__ import annotations

from kowalski.surveys.base import Survey


class TURBO(Survey):
    name = "turbo"
    default_topic_pattern = r"^turbo_\d{8}$"
    programid_field = "candidate.programid"
    history_programid_field = "programid"
    history_arrays = ("prv_candidates",)
    default_public_programids = (1,)
