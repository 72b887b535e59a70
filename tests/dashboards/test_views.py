"""The dashboards' view helpers without a browser: the sky of a search's results (points, then a
datashader image when there are many, rendered by Bokeh) and the classification form's parsing."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from dashboards.labels_view import labels_frame, parse_label
from dashboards.sky_view import POINTS_MAX, sky_plot

hv.extension("bokeh", logo=False)


def positions(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ra": rng.uniform(0, 360, n), "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n)))})


def glyphs(plot) -> set[str]:
    fig = hv.render(plot, backend="bokeh")
    return {type(r.glyph).__name__ for r in fig.renderers}


def test_few_results_are_points_many_a_datashader_image():
    few = sky_plot(positions(200), 200)
    assert glyphs(few) == {"Scatter"}, glyphs(few)
    many = sky_plot(positions(POINTS_MAX * 10), POINTS_MAX * 20)
    assert glyphs(many) == {"Image"}, glyphs(many)
    frame = hv.render(many, backend="bokeh")
    assert "30,000 of 60,000" in frame.title.text and "datashader" in frame.title.text, frame.title.text
    image = frame.renderers[0].data_source.data["image"][0]
    assert np.nansum(image) == POINTS_MAX * 10  # every position counted once in the aggregate


def test_bad_positions_are_left_out():
    df = pd.DataFrame({"ra": [10.0, None, "x", 20.0], "dec": [1.0, 2.0, 3.0, None]})
    assert glyphs(sky_plot(df, 4)) == {"Scatter"}
    assert "1 of 4" in hv.render(sky_plot(df, 4), backend="bokeh").title.text


@pytest.mark.parametrize("text, value, says", [
    ("", 1.0, "1–64 characters"), ("$x", 1.0, "not starting with '$'"), ("a.b", 1.0, "without '.'"),
    ("SN Ia", 1.5, "between 0 and 1"), ("SN Ia", -0.1, "between 0 and 1")])
def test_bad_labels_say_why(text, value, says):
    with pytest.raises(ValueError, match=says.replace("$", r"\$").replace(".", r"\.")):
        parse_label(text, value)


def test_labels_as_rows():
    assert parse_label(" SN Ia ", None) == {"SN Ia": 1.0}
    assert parse_label("AGN", 0.4) == {"AGN": 0.4}
    df = labels_frame({"human_labels": {"b": 0.5, "a": 1.0}})
    assert df.to_dict("records") == [{"label": "a", "value": 1.0}, {"label": "b", "value": 0.5}]
    assert labels_frame(None).empty and list(labels_frame(None).columns) == ["label", "value"]


def test_cross_matches_with_separations_nearest_first_as_escaped_html():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from dashboards.pages.object import crossmatch_frames, small_table

    ra, dec = 46.997375, 9.367935  # ZTF17aadcvhq
    here = SkyCoord(ra * u.deg, dec * u.deg)
    far = here.directional_offset_by(30 * u.deg, 2.5 * u.arcsec)
    near = here.directional_offset_by(200 * u.deg, 0.8 * u.arcsec)
    aux = {"cross_matches": {
        "Gaia_EDR3": [
            {"_id": "far", "ra": far.ra.deg, "dec": far.dec.deg, "phot_g_mean_mag": 18.2},
            # a catalog position given only as GeoJSON (longitude = RA - 180)
            {"_id": "<b>near</b>", "coordinates": {"radec_geojson": {"coordinates": [near.ra.deg - 180, near.dec.deg]}},
             "nested": {"left": "out"}},
        ],
        "empty": [],
    }}
    frames = crossmatch_frames(aux, ra, dec)
    assert list(frames) == ["Gaia_EDR3"]
    df = frames["Gaia_EDR3"]
    assert list(df["_id"]) == ["<b>near</b>", "far"] and "nested" not in df
    assert df["separation_arcsec"].tolist() == pytest.approx([0.8, 2.5], abs=1e-3)
    html = small_table(df).object
    assert "&lt;b&gt;near&lt;/b&gt;" in html and "<b>near" not in html and "separation_arcsec" in html
