"""``GET /api/cutouts/{survey}/{candid}/{science|template|difference}/{fits|png}``.

FITS: the stamp as the survey sent it (gunzipped, header and WCS untouched). PNG: North up, East
left (orientation read from the stamp's WCS, falling back to the survey's known layout), scaled
with an astropy.visualization interval and stretch, coloured with a matplotlib colour map
(looked up once into a 256-entry table) and encoded with Pillow.
Query options: ``stretch`` (linear, log, asinh, sqrt; default log, linear for difference),
``interval`` (min_max, zscale, asymmetric_percentile = 1–100 %; default asymmetric_percentile),
``cmap`` (bone, gray, cividis, viridis, magma; default bone), ``size`` (pixels, 16–1024; 168).
"""

from __future__ import annotations

import gzip
import time

from api.base import APIError, BaseHandler, authenticated
from api.rights import Rights
from kowalski.repositories import Alerts
from kowalski.surveys import CUTOUT_KINDS, get_survey
from kowalski.cutouts import CMAPS, INTERVALS, STRETCHES, north_up_east_left, read_fits, render_png  # noqa: F401 - re-exported

CUTOUTS = CUTOUT_KINDS
FORMATS = ("fits", "png")
DEFAULT_SIZE = 168  # Kowalski's PNG: a 4-inch figure at 42 dpi


def read_stamp(value) -> bytes:
    """The FITS bytes of a stored cutout (``{"stampData": gz bytes}`` or raw bytes)."""
    if isinstance(value, dict):
        value = value.get("stampData")
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise APIError(404, "no cutout data stored for this alert")
    raw = bytes(value)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw


class CutoutHandler(BaseHandler):
    def _choice(self, name: str, allowed: tuple, default: str) -> str:
        value = self.get_query_argument(name, default)
        if value not in allowed:
            raise APIError(400, f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    @authenticated
    async def get(self, survey: str, candid: str, cutout: str, file_format: str):
        """A cutout of an alert as FITS or PNG."""
        survey = survey.lower()
        if survey not in self.config["surveys"]:
            raise APIError(400, f"survey {survey} not in [{', '.join(self.config['surveys'])}]")
        if cutout not in CUTOUTS:
            raise APIError(400, f"cutout {cutout} not in [{', '.join(CUTOUTS)}]")
        if file_format not in FORMATS:
            raise APIError(400, f"file format {file_format} not in [{', '.join(FORMATS)}]")
        if not candid.isdigit() or len(candid) > 19 or int(candid) >= 2**63:
            raise APIError(400, f"candid must be a positive 64-bit integer, not {candid!r}")
        if file_format == "png":
            stretch = self._choice("stretch", STRETCHES, "linear" if cutout == "difference" else "log")
            interval = self._choice("interval", INTERVALS, "asymmetric_percentile")
            cmap = self._choice("cmap", CMAPS, "bone")
            size_arg = self.get_query_argument("size", str(DEFAULT_SIZE))
            if not size_arg.isdigit() or not 16 <= int(size_arg) <= 1024:
                raise APIError(400, f"size must be an integer number of pixels in [16, 1024], not {size_arg!r}")
            size = int(size_arg)
        definition = get_survey(survey, self.config)
        coll = definition.alerts_collection
        field = definition.cutout_field(cutout)
        rights = Rights(self.config, self.current_user, self.is_admin)
        flt = rights.restrict_filter(coll, {"candid": int(candid)})
        t0 = time.perf_counter()
        doc = await Alerts(self.db, self.config, survey).find_one(flt, {"_id": 0, field: 1})
        self.db_seconds += time.perf_counter() - t0
        if doc is None:
            raise APIError(404, f"{survey} alert {candid} not found")
        raw = read_stamp(doc.get(field))
        if file_format == "fits":
            name = (doc.get(field) or {}).get("fileName") if isinstance(doc.get(field), dict) else None
            name = (name or f"{survey}_{candid}_{cutout}.fits").removesuffix(".gz")
            self.set_header("Content-Type", "image/fits")
            self.set_header("Content-Disposition", f"Attachment;filename={name}")
            self.server_timing()
            self.finish(raw)
            return
        try:
            image, header = read_fits(raw)
        except Exception as exc:  # noqa: BLE001 - a corrupt stamp is the data's fault, not the client's
            raise APIError(422, f"stored cutout cannot be read as FITS: {exc.__class__.__name__}") from None
        if image.ndim != 2:
            raise APIError(422, f"stored cutout is not a 2-D image (shape {image.shape})")
        png = render_png(north_up_east_left(image, header, definition.cutout_layout), stretch, interval, cmap, size)
        self.set_header("Content-Type", "image/png")
        self.server_timing()
        self.finish(png)


default_handlers = [
    (r"/api/cutouts/([^/]+)/([^/]+)/([^/]+)/([^/]+)/?", CutoutHandler),
]
