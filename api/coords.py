"""Object coordinates and angles for cone searches, as Kowalski parses them.

``radec`` may be:
* a dict ``{"name": [ra, dec], ...}`` → names are the keys with ``.`` replaced by ``_``;
* a list ``[[ra, dec], ...]`` → names are ``str(pair)`` with ``.`` → ``_``
  (``"[71_6577756, -10_2263957]"``);
* a string: ``"ra dec"`` in degrees, ``"HH:MM:SS.s ±DD:MM:SS.s"`` or ``"HHhMMmSS.Ss ±DDdMMmSS.Ss"``
  for one object, or a stringified list/dict of the above.
RA/Dec are degrees (numbers or numeric strings) or sexagesimal strings (hours for RA).
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

from api.base import APIError

ANGULAR_UNITS = ("arcsec", "arcmin", "deg", "rad")
_TO_RAD = {"arcsec": math.pi / 180 / 3600, "arcmin": math.pi / 180 / 60, "deg": math.pi / 180, "rad": 1.0}
MAX_OBJECTS = 10000
_SEXA = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d*)?)[:hd\s]\s*(\d+(?:\.\d*)?)(?:[:m'\s]\s*(\d+(?:\.\d*)?)\s*[s\"]?)?\s*$", re.I)


def angle_to_rad(value: Any, units: Any, what: str = "angle") -> float:
    if units not in ANGULAR_UNITS:
        raise APIError(400, f"{what} units must be one of {', '.join(ANGULAR_UNITS)}, not {units!r}")
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise APIError(400, f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise APIError(400, f"{what} must be a finite number >= 0, not {value!r}")
    rad = x * _TO_RAD[units]
    if rad > math.pi:
        raise APIError(400, f"{what} must be at most 180 deg")
    return rad


def _sexagesimal(text: str, hours: bool) -> float:
    m = _SEXA.match(text)
    if not m:
        raise ValueError(text)
    sign = -1.0 if m.group(1) == "-" else 1.0
    d, mi, s = float(m.group(2)), float(m.group(3)), float(m.group(4) or 0.0)
    if mi >= 60 or s >= 60:
        raise ValueError(text)
    value = sign * (d + mi / 60 + s / 3600)
    return value * 15.0 if hours else value


def parse_angle(value: Any, hours: bool, what: str) -> float:
    """Degrees from a number, a numeric string or a sexagesimal string."""
    if isinstance(value, bool):
        raise APIError(400, f"bad {what}: {value!r}")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            try:
                x = _sexagesimal(value, hours)
            except ValueError:
                raise APIError(400, f"bad {what}: {value!r} (degrees, or "
                                    f"{'HH:MM:SS.s / HHhMMmSS.Ss' if hours else '±DD:MM:SS.s / ±DDdMMmSS.Ss'})") from None
    else:
        raise APIError(400, f"bad {what}: {value!r}")
    if not math.isfinite(x):
        raise APIError(400, f"bad {what}: {value!r}")
    return x


def to_geojson(pair: Any) -> tuple[float, float]:
    """(ra, dec) → (lon = ra − 180, lat = dec) as stored in ``coordinates.radec_geojson``."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise APIError(400, f"object coordinates must be [ra, dec] pairs, not {pair!r}")
    ra = parse_angle(pair[0], hours=isinstance(pair[0], str) and not _is_number(pair[0]), what="ra")
    dec = parse_angle(pair[1], hours=False, what="dec")
    if not 0.0 <= ra < 360.0:
        raise APIError(400, f"ra must be in [0, 360) degrees, not {pair[0]!r}")
    if not -90.0 <= dec <= 90.0:
        raise APIError(400, f"dec must be in [-90, 90] degrees, not {pair[1]!r}")
    return ra - 180.0, dec


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_radec(radec: Any) -> tuple[list[str], list[Any]]:
    """Object names and coordinate pairs from any of the accepted forms."""
    if isinstance(radec, str):
        text = radec.strip()
        if not text.startswith(("[", "(", "{")):
            parts = text.split()
            if len(parts) != 2:
                raise APIError(400, f'radec string must be "ra dec" for one object, not {radec!r}')
            a, b = parts
            if _is_number(a) and _is_number(b):
                radec = [(float(a), float(b))]
            else:
                radec = [(a, b)]
        else:
            try:
                radec = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise APIError(400, f"cannot parse radec {radec[:80]!r}") from None
    if isinstance(radec, (list, tuple)):
        pairs = list(radec)
        names = [str(p).replace(".", "_") for p in pairs]
    elif isinstance(radec, dict):
        names = [str(k).replace(".", "_") for k in radec]
        pairs = list(radec.values())
    else:
        raise APIError(400, "radec must be an object {name: [ra, dec]}, a list of [ra, dec] or a string")
    if not pairs:
        raise APIError(400, "radec is empty: give at least one object")
    if len(pairs) > MAX_OBJECTS:
        raise APIError(400, f"too many objects in radec: {len(pairs)} > {MAX_OBJECTS}")
    return names, pairs
