"""TURBO: ZTF-like candidate schema, no fp_hists, raw-bytes cutouts.

Its writer schemas declare ``"default": null`` on non-nullable fields, which fastavro >= 1.7
rejects; :func:`broker.stages.decode.read_container` repairs such schemas, so nothing here.
"""

from __future__ import annotations

from broker.surveys.base import Survey


class TURBO(Survey):
    name = "turbo"
    default_topic_pattern = r"^turbo_\d{8}$"
