"""GCN VOEvents (VOEvent 2.0): the event time, trigger id, aliases and localisation of a notice.

Checked sensibly rather than against the full XSD: the XML is parsed without entities or external
references (defusedxml), the root must be a ``VOEvent`` with an ``ivorn`` and a known ``role``,
and the notice must carry an event time. The localisation is, in Kowalski's order: a skymap URL
(LVK ``GW_SKYMAP``/``skymap_fits``, Fermi GBM ``HealPix_URL`` or ``LocationMap_URL``), else the
error circle of ``WhereWhen`` (1-sigma radius; AMON's 90% radius converted).
"""

from __future__ import annotations

import datetime as dt
import math
from urllib.parse import urlparse

from kowalski.skymaps import SkymapError

ROLES = ("observation", "prediction", "utility", "test")


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _iter(root, name: str):
    return (e for e in root.iter() if _local(e.tag) == name)


def _param(root, name: str) -> str | None:
    for e in _iter(root, "Param"):
        if e.attrib.get("name") == name:
            return e.attrib.get("value")
    return None


def parse(xml: str | bytes):
    """The root element of a VOEvent, or SkymapError saying why it is not one."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    if not isinstance(xml, bytes) or not xml.strip():
        raise SkymapError("voevent must be a non-empty XML string")
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise SkymapError(f"xml file is not valid VOEvent: {exc.__class__.__name__} (DTDs and entities are refused)") from None
    except Exception as exc:  # noqa: BLE001 - ParseError and friends
        raise SkymapError(f"xml file is not valid VOEvent: {str(exc)[:200]}") from None
    if _local(root.tag) != "VOEvent":
        raise SkymapError(f"xml file is not valid VOEvent: the root element is {_local(root.tag)!r}")
    if not str(root.attrib.get("ivorn", "")).startswith("ivo://"):
        raise SkymapError("xml file is not valid VOEvent: missing or bad ivorn attribute")
    if root.attrib.get("role") not in ROLES:
        raise SkymapError(f"xml file is not valid VOEvent: role must be one of {', '.join(ROLES)}")
    return root


def dateobs(root) -> dt.datetime | None:
    """The event time (``WhereWhen`` ISOTime), UTC, naive."""
    for e in _iter(root, "ISOTime"):
        text = (e.text or "").strip().rstrip("Z")
        try:
            return dt.datetime.fromisoformat(text).replace(tzinfo=None)
        except ValueError:
            raise SkymapError(f"VOEvent ISOTime {text!r} is not an ISO time") from None
    return None


def trigger_id(root) -> str | None:
    value = _param(root, "TrigID")
    return str(value).strip() if value not in (None, "") else None


def aliases(root, when: dt.datetime | None) -> list[str]:
    """``LVC#<GraceID>`` for gravitational-wave notices, ``FERMI#bn<YYMMDDfff>`` for Fermi GBM,
    ``<MISSION>#<TrigID>`` otherwise."""
    ivorn = root.attrib.get("ivorn", "")
    graceid = _param(root, "GraceID")
    if graceid:
        return [f"LVC#{graceid}"]
    if "Fermi" in ivorn and when is not None:
        frac = (when.hour * 3600 + when.minute * 60 + when.second + when.microsecond / 1e6) / 86400
        return [f"FERMI#bn{when:%y%m%d}{min(999, round(frac * 1000)):03d}"]  # GRB 170817A: bn170817529
    trig = trigger_id(root)
    name = urlparse(ivorn).netloc.split(".")[-1] or urlparse(ivorn).path.strip("/").split("/")[0]
    return [f"{name.upper()}#{trig}"] if trig and name else []


def is_retraction(root) -> bool:
    return (_param(root, "Retraction") or "").strip() in ("1", "true", "True")


def skymap(root) -> dict:
    """``{"url": ...}`` or ``{"ra", "dec", "error"}`` for the ``skymap`` of PUT /api/skymap."""
    if is_retraction(root):
        raise SkymapError("the VOEvent is a retraction: it has no skymap")
    for g in _iter(root, "Group"):
        if g.attrib.get("type") == "GW_SKYMAP":
            for p in g:
                if _local(p.tag) == "Param" and p.attrib.get("name") == "skymap_fits" and p.attrib.get("value"):
                    return {"url": p.attrib["value"]}
    url = _param(root, "HealPix_URL")
    if not url and _param(root, "LocationMap_URL"):
        url = (_param(root, "LocationMap_URL").replace("http://", "https://").replace("_locplot_", "_healpix_")
               .replace(".png", ".fit"))
    if url:
        return {"url": url}
    c1 = next((e.text for e in _iter(root, "C1")), None)
    c2 = next((e.text for e in _iter(root, "C2")), None)
    err = next((e.text for e in _iter(root, "Error2Radius")), None)
    try:
        ra, dec, error = float(c1), float(c2), float(err)
    except (TypeError, ValueError):
        raise SkymapError("Could not get skymap from VOEvent file: no skymap URL and no error circle") from None
    if not all(math.isfinite(x) for x in (ra, dec, error)):
        raise SkymapError("Could not get skymap from VOEvent file: the error circle is not finite")
    if "AMON" in root.attrib.get("ivorn", ""):
        error /= math.sqrt(-2 * math.log(0.05))  # 90% radius of a 2-D Gaussian (chi, 2 dof, 0.95) -> sigma
    return {"ra": ra, "dec": dec, "error": error}
