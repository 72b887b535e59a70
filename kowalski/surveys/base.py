"""A survey's definition: every fact about a survey, asked by every module that needs one.

The broker's stages (how a packet is read, normalised, validated, de-duplicated), the filters'
input (Kowalski's upstream view: history window, forced photometry), data rights (program-id
fields, public ids, history arrays), cutouts (field names, layout without WCS) and SkyPortal
delivery (bands, streams, instrument) all read it here; nothing else branches on a survey's name.

A survey module subclasses :class:`Survey` and overrides only what differs (class attributes
first, methods when the packet shape differs, as for LSST). Values that operators may change
(collection prefix, topic pattern, object-id field, public program ids, ML models) come from
config ``surveys.<name>`` and ``ml.<name>``; the class attributes are the defaults.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from kowalski.errors import AlertError


@dataclass(frozen=True)
class SkyPortalMapping:
    """How a survey's photometry reaches SkyPortal: band names by filter id, stream names by
    the program ids they carry, and the instrument's name in SkyPortal."""
    bands: Mapping[int, str]
    streams: Mapping[str, tuple[int, ...]]
    instrument: str


def get_field(doc: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


CUTOUT_KINDS = ("science", "template", "difference")


class Survey:
    #: registry name, also the key under ``surveys:`` and ``ml:`` in config
    name: ClassVar[str] = ""
    #: default Kafka topic regex (config ``surveys.<name>.topic_pattern`` overrides)
    default_topic_pattern: ClassVar[str] = ""
    #: default object-id field (config ``surveys.<name>.object_id`` overrides)
    default_object_id: ClassVar[str] = "objectId"
    alert_id: ClassVar[str] = "candid"
    #: science, template, difference: either {fileName, stampData} records or raw bytes
    cutout_fields: ClassVar[tuple[str, str, str]] = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
    #: fields every decoded packet must carry (dotted paths; the object id is added)
    required_fields: ClassVar[tuple[str, ...]] = ("candid", "candidate.jd", "candidate.ra", "candidate.dec")
    #: keys identifying one prv_candidates entry: the first present and not None wins
    prv_keys: ClassVar[tuple[tuple[str, ...], ...]] = (("candid",), ("jd", "fid"))
    #: forced photometry (flux field, flux-error field, zero point: field name or number) or None
    fp_flux: ClassVar[tuple[str, str, str | float] | None] = None
    #: values dropped from forced-photometry entries (besides None)
    fp_sentinels: ClassVar[tuple] = (-99999, -99999.0)
    #: (field, value) of a usable forced-photometry point, the only ones filters see; None: all
    fp_good: ClassVar[tuple[str, str] | None] = None
    #: how a cutout without a usable WCS is turned North up, East left (``kowalski.cutouts.LAYOUTS``)
    cutout_layout: ClassVar[str] = "flipud"
    #: arcsec per cutout pixel, for stamps without WCS keywords (None: unknown)
    pixel_scale_arcsec: ClassVar[float | None] = None
    #: band names by the candidate's filter id (``fid``), for light curves and tables
    bands: ClassVar[Mapping[int, str]] = {}

    # data rights: who sees which alert and which history point
    #: the alert's program-id field (dotted); None: the survey has no program ids, all is public
    programid_field: ClassVar[str | None] = None
    #: the program-id field of history points; None: history points are not restricted
    history_programid_field: ClassVar[str | None] = None
    #: the aux history arrays restricted point by point on ``history_programid_field``
    history_arrays: ClassVar[tuple[str, ...]] = ()
    #: program ids everyone may see (config ``surveys.<name>.public_programids`` overrides)
    default_public_programids: ClassVar[tuple[int, ...]] = ()

    #: a filter sees history points with candidate.jd - jd < this (Kowalski's upstream window)
    history_window_days: ClassVar[float] = 365
    #: SkyPortal delivery; None: the survey's alerts cannot be posted to SkyPortal
    skyportal: ClassVar[SkyPortalMapping | None] = None

    def __init__(self, config: Mapping):
        self.config = config
        self.settings: Mapping = (config.get("surveys") or {}).get(self.name) or {}
        self.prefix: str = self.settings.get("prefix", self.name.upper())
        self.object_id: str = self.settings.get("object_id", self.default_object_id)
        self.topic_pattern: str = self.settings.get("topic_pattern") or self.default_topic_pattern
        public = self.settings.get("public_programids", self.default_public_programids)
        self.public_programids: tuple[int, ...] = tuple(sorted({int(p) for p in public or ()}))

    @property
    def has_programids(self) -> bool:
        return self.programid_field is not None

    @property
    def restricts_history(self) -> bool:
        return self.history_programid_field is not None and bool(self.history_arrays)

    @functools.cached_property
    def upstream(self):
        """The document filters see, as Kowalski's upstream pipeline builds it (``kowalski.filters.inputs``)."""
        from kowalski.filters.inputs import UpstreamSpec

        return UpstreamSpec(self.name, self.alerts_collection, self.aux_collection, self.object_id,
                            tuple(self.cutout_fields), self.programid_field, self.history_programid_field,
                            float(self.history_window_days), self.has_fp_hists,
                            self.fp_good if self.has_fp_hists else None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} prefix={self.prefix}>"

    # --- collections ------------------------------------------------------------------------

    @property
    def alerts_collection(self) -> str:
        return f"{self.prefix}_alerts"

    @property
    def aux_collection(self) -> str:
        return f"{self.prefix}_alerts_aux"

    @property
    def classifications_collection(self) -> str:
        return f"{self.prefix}_alerts_classifications"

    @property
    def outbox_collection(self) -> str:
        """Filter outputs waiting for delivery (``broker/delivery``)."""
        return f"{self.prefix}_filter_outbox"

    def cutout_field(self, which: str) -> str:
        """The field of cutout ``which`` (science, template, difference)."""
        return self.cutout_fields[CUTOUT_KINDS.index(which)]

    # --- decoding ---------------------------------------------------------------------------

    def read(self, data: bytes) -> list[dict]:
        """Bytes of one Kafka message -> raw records (default: an Avro Object Container File)."""
        from kowalski.surveys.avro import read_container

        return read_container(data)

    def normalize(self, record: dict) -> dict:
        """Raw record -> the common packet shape (objectId/candid/candidate/prv_candidates/fp_hists)."""
        return record

    def validate(self, packet: Mapping) -> None:
        for path in (self.object_id, *self.required_fields):
            if get_field(packet, path) is None:
                raise AlertError(f"missing required field {path}")
        ra, dec = self.radec(packet)
        if not (isinstance(ra, (int, float)) and math.isfinite(ra) and 0.0 <= ra < 360.0):
            raise AlertError(f"invalid candidate.ra {ra!r}: must be in [0, 360)")
        if not (isinstance(dec, (int, float)) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
            raise AlertError(f"invalid candidate.dec {dec!r}: must be in [-90, 90]")

    # --- accessors --------------------------------------------------------------------------

    def radec(self, packet: Mapping) -> tuple[float, float]:
        c = packet["candidate"]
        return c["ra"], c["dec"]

    def jd(self, packet: Mapping) -> float:
        return packet["candidate"]["jd"]

    def object_key(self, packet: Mapping) -> str:
        return packet[self.object_id]

    def cutout_bytes(self, packet: Mapping, which: int) -> bytes | None:
        """Raw bytes (gzipped FITS as a rule) of cutout 0=science, 1=template, 2=difference."""
        value = packet.get(self.cutout_fields[which])
        if isinstance(value, Mapping):
            value = value.get("stampData")
        return value if isinstance(value, (bytes, bytearray)) and value else None

    def prv_key(self, entry: Mapping) -> tuple:
        """Identity of a prv_candidates entry (for de-duplication across alerts)."""
        for fields in self.prv_keys:
            values = tuple(entry.get(f) for f in fields)
            if all(v is not None for v in values):
                return (fields, values)
        return ("doc", tuple(sorted((k, repr(v)) for k, v in entry.items())))

    def alert_mag(self, candidate: Mapping) -> float | None:
        """The alert's magnitude, stamped on its forced photometry (``alert_mag``)."""
        return candidate.get("magpsf")

    @property
    def has_fp_hists(self) -> bool:
        return self.fp_flux is not None

    # --- aux rules --------------------------------------------------------------------------

    def keep_fp_for_new_object(self, candidate: Mapping) -> bool:
        """Kowalski: a new object's fp_hists are kept only when its history is complete.

        Packets carry ~30 days of forced photometry; for an object first seen later than that,
        it would be a partial history, so Kowalski stores none (ndethist <= 1 or
        jd - jdstarthist < 30 keeps them). The archive keeps them by default (nothing good is
        lost; filters see the forced photometry the packet carried); config
        ``surveys.<name>.fp_hists_cutoff: true`` restores Kowalski's rule.
        """
        if not self.settings.get("fp_hists_cutoff", False):
            return True
        ndethist, jd, start = candidate.get("ndethist"), candidate.get("jd"), candidate.get("jdstarthist")
        if ndethist is not None and ndethist <= 1:
            return True
        if jd is not None and start is not None:
            return jd - start < 30
        return ndethist is None  # no way to tell: keep

    # --- ML ---------------------------------------------------------------------------------

    def ml_models(self) -> Mapping:
        """The configured models for this survey (``ml.<name>.models``), possibly empty."""
        return ((self.config.get("ml") or {}).get(self.name) or {}).get("models") or {}
