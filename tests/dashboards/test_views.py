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
