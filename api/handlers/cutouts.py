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

import functools
import gzip
import io
import time
import warnings

import numpy as np

from api.base import APIError, BaseHandler, authenticated
from api.rights import Rights
from kowalski import db as kdb

CUTOUTS = ("science", "template", "difference")
FORMATS = ("fits", "png")
STRETCHES = ("linear", "log", "asinh", "sqrt")
INTERVALS = ("min_max", "zscale", "asymmetric_percentile")
CMAPS = ("bone", "gray", "cividis", "viridis", "magma")
DEFAULT_SIZE = 168  # Kowalski's PNG: a 4-inch figure at 42 dpi


def cutout_field(survey: str, cutout: str) -> str:
    if survey == "wntr":
        return f"cutout_{cutout}"
    return f"cutout{cutout.capitalize()}"


@functools.lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    import matplotlib
    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _stretch(name: str):
    from astropy import visualization as v
    return {"linear": v.LinearStretch, "log": v.LogStretch, "asinh": v.AsinhStretch, "sqrt": v.SqrtStretch}[name]()


def _interval(name: str):
    from astropy import visualization as v
    if name == "min_max":
        return v.MinMaxInterval()
    if name == "zscale":
        return v.ZScaleInterval()
    return v.AsymmetricPercentileInterval(lower_percentile=1, upper_percentile=100)


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


def _orientation_matrix(header) -> np.ndarray | None:
    def key(k, default=None):
        v = header.get(k, default)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default
    if key("CD1_1") is not None or key("CD2_2") is not None:
        m = np.array([[key("CD1_1", 0.0), key("CD1_2", 0.0)], [key("CD2_1", 0.0), key("CD2_2", 0.0)]])
    elif key("CDELT1") is not None and key("CDELT2") is not None:
        pc = np.array([[key("PC1_1", 1.0), key("PC1_2", 0.0)], [key("PC2_1", 0.0), key("PC2_2", 1.0)]])
        m = np.diag([key("CDELT1"), key("CDELT2")]) @ pc
    else:
        return None
    if str(header.get("CTYPE1", "RA")).upper().startswith("DEC"):
        m = m[::-1]
    return m if np.all(np.isfinite(m)) and np.any(m) else None


def north_up_east_left(image: np.ndarray, header, survey: str) -> np.ndarray:
    """Rows top to bottom, as a PNG is written: North up, East left."""
    m = _orientation_matrix(header)
    if m is None:  # the surveys' known layouts (Kowalski's)
        if survey == "pgir":
            return np.rot90(np.fliplr(image), 3)
        return np.flipud(image)
    m = m.copy()
    a = image
    if abs(m[0, 0]) + abs(m[1, 1]) < abs(m[0, 1]) + abs(m[1, 0]):  # pixel axes swapped on the sky
        a = a.T
        m = m[:, ::-1]
    if m[0, 0] > 0:  # RA grows with x: East is right, flip
        a = a[:, ::-1]
    if m[1, 1] < 0:  # Dec falls with y: South is up, flip
        a = a[::-1, :]
    return a[::-1, :]  # FITS row 0 is the bottom row


def render_png(image: np.ndarray, stretch: str, interval: str, cmap: str, size: int) -> bytes:
    from astropy.visualization import ImageNormalize
    from PIL import Image

    data = np.array(image, dtype=np.float64)
    data[np.abs(data) > 1e20] = np.nan
    bad = ~np.isfinite(data)
    if bad.all():
        data = np.zeros_like(data)
    elif bad.any():
        data[bad] = np.nanmean(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = ImageNormalize(data, interval=_interval(interval), stretch=_stretch(stretch), clip=True)
        scaled = np.nan_to_num(np.asarray(norm(data), dtype=np.float64), nan=0.0)
    idx = np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = colour_table(cmap)[idx]
    img = Image.fromarray(rgb, "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


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
        coll = kdb.alerts_collection(self.config, survey)
        field = cutout_field(survey, cutout)
        rights = Rights(self.config, self.current_user, self.is_admin)
        flt = rights.restrict_filter(coll, {"candid": int(candid)})
        t0 = time.perf_counter()
        doc = await self.db[coll].find_one(flt, {"_id": 0, field: 1})
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
        from astropy.io import fits
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(io.BytesIO(raw), ignore_missing_simple=True) as hdul:
                    header = hdul[0].header
                    image = np.asarray(hdul[0].data, dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - a corrupt stamp is the data's fault, not the client's
            raise APIError(422, f"stored cutout cannot be read as FITS: {exc.__class__.__name__}") from None
        if image.ndim != 2:
            raise APIError(422, f"stored cutout is not a 2-D image (shape {image.shape})")
        png = render_png(north_up_east_left(image, header, survey), stretch, interval, cmap, size)
        self.set_header("Content-Type", "image/png")
        self.server_timing()
        self.finish(png)


default_handlers = [
    (r"/api/cutouts/([^/]+)/([^/]+)/([^/]+)/([^/]+)/?", CutoutHandler),
]
