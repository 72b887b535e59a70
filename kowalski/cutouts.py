"""Cutout stamps as images: reading the FITS a survey sent, turning it North up / East left, and
scaling it with astropy.visualization (stretch × interval) — shared by the API's PNG route, the
SkyPortal thumbnails and the dashboards, so every view of a stamp is oriented and scaled alike."""

from __future__ import annotations

import functools
import gzip
import io
import warnings

import numpy as np

STRETCHES = ("linear", "log", "asinh", "sqrt")
INTERVALS = ("min_max", "zscale", "asymmetric_percentile")
CMAPS = ("bone", "gray", "cividis", "viridis", "magma")


@functools.lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    import matplotlib
    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def stretch(name: str):
    from astropy import visualization as v
    return {"linear": v.LinearStretch, "log": v.LogStretch, "asinh": v.AsinhStretch, "sqrt": v.SqrtStretch}[name]()


def interval(name: str):
    """min_max, zscale, or (anything else) the 1–100 % asymmetric percentile interval."""
    from astropy import visualization as v
    if name == "min_max":
        return v.MinMaxInterval()
    if name == "zscale":
        return v.ZScaleInterval()
    return v.AsymmetricPercentileInterval(lower_percentile=1, upper_percentile=100)


def read_fits(raw: bytes):
    """(2-D float image, header) of a stamp's FITS bytes (gzipped or not). ZTF stamps have a
    non-standard SIMPLE card and no WCS: astropy's warnings about that are silenced."""
    from astropy.io import fits

    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw), ignore_missing_simple=True) as hdul:
            return np.asarray(hdul[0].data, dtype=np.float64), hdul[0].header.copy()


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


#: how a stamp without a usable WCS is turned North up, East left (Kowalski's per-survey layouts);
#: a survey definition names its layout (``Survey.cutout_layout``)
LAYOUTS = {
    "flipud": np.flipud,
    "pgir": lambda image: np.rot90(np.fliplr(image), 3),
}


def north_up_east_left(image: np.ndarray, header, layout: str = "flipud") -> np.ndarray:
    """Rows top to bottom, as a PNG is written: North up, East left (the WCS decides; without one,
    the survey's ``layout``)."""
    m = _orientation_matrix(header) if header is not None else None
    if m is None:
        return LAYOUTS[layout](image)
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


def normalize(image: np.ndarray, stretch_name: str, interval_name: str) -> np.ndarray:
    """The image scaled to [0, 1] by the interval then the stretch; bad pixels (NaN, the surveys'
    ±1e20 fill values) take the mean so they neither dominate the interval nor show as holes."""
    from astropy.visualization import ImageNormalize

    data = np.array(image, dtype=np.float64)
    data[np.abs(data) > 1e20] = np.nan
    bad = ~np.isfinite(data)
    if bad.all():
        data = np.zeros_like(data)
    elif bad.any():
        data[bad] = np.nanmean(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norm = ImageNormalize(data, interval=interval(interval_name), stretch=stretch(stretch_name), clip=True)
        return np.nan_to_num(np.asarray(norm(data), dtype=np.float64), nan=0.0)


def render_png(image: np.ndarray, stretch_name: str, interval_name: str, cmap: str, size: int | None) -> bytes:
    """PNG bytes of an image already oriented (rows top to bottom), ``size`` pixels square (None:
    its own pixels, for a browser to scale)."""
    from PIL import Image

    idx = np.clip(normalize(image, stretch_name, interval_name) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = Image.fromarray(colour_table(cmap)[idx], "RGB")
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
