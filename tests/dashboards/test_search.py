"""The alert browser's parsing and the cutout scaling (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from dashboards.search import InputError, Search, parse_position, parse_thresholds, parse_time, radius_arcsec
from kowalski.cutouts import normalize


@pytest.mark.parametrize("text", ["04:46:37.86 -10:13:34.9", "4h46m37.86s -10d13m34.9s", "71.65775 -10.2263611",
                                  "71.65775,-10.2263611"])
def test_positions_decimal_and_sexagesimal(text):
    ra, dec = parse_position(text)
    assert ra == pytest.approx(71.65775, abs=1e-5) and dec == pytest.approx(-10.2263611, abs=1e-5)


@pytest.mark.parametrize("text, says", [("12 abc", "not readable"), ("400 10", "off the sky"), ("1 2 3", "give RA and Dec"),
                                        ("10 -95", "off the sky"), ("", "give RA and Dec")])
def test_malformed_positions_say_why(text, says):
    with pytest.raises(InputError, match=says):
        parse_position(text)


def test_radius_units():
    assert radius_arcsec(2, "arcmin") == pytest.approx(120)
    assert radius_arcsec(0.5, "deg") == pytest.approx(1800)
    for bad in ((0, "arcsec"), (-1, "arcsec"), (1, "parsec"), (11, "deg")):
        with pytest.raises(InputError):
            radius_arcsec(*bad)


def test_times_and_thresholds():
    assert parse_time("2460230.5", "start") == 2460230.5
    assert parse_time("2023-10-12", "start") == pytest.approx(2460229.5)
    with pytest.raises(InputError, match="neither a JD nor a date"):
        parse_time("yesterday", "start")
    assert parse_thresholds("bts >= 0.8, drb>0.5; acai_h ≤ 0.1") == {
        "classifications.bts": {"$gte": 0.8}, "candidate.drb": {"$gt": 0.5}, "classifications.acai_h": {"$lte": 0.1}}
    with pytest.raises(InputError, match="bts >= 0.8"):
        parse_thresholds("bts is high")
    with pytest.raises(InputError, match="before its start"):
        Search(start="2460231", end="2460230").mongo_filter()


def test_every_stretch_and_interval_scales_to_unit_range_and_differs():
    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 50.0, (63, 63))
    image[30, 30] = 1e5  # a star
    image[0, 0] = np.nan
    out = {}
    for s in ("linear", "log", "asinh", "sqrt"):
        for i in ("zscale", "min_max", "asymmetric_percentile"):
            a = normalize(image, s, i)
            assert a.shape == image.shape and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1, (s, i)
            out[s, i] = a
    assert not np.allclose(out["linear", "min_max"], out["log", "min_max"])
    assert not np.allclose(out["linear", "zscale"], out["linear", "min_max"])
