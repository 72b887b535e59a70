"""Science / template / difference cutouts side by side, from the FITS the API serves, North up
East left, with stretch, interval and colour-map controls (astropy.visualization scaling)."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn

from kowalski.cutouts import CMAPS, INTERVALS, STRETCHES, normalize, north_up_east_left, read_fits

CUTOUTS = ("science", "template", "difference")
INTERVAL_LABELS = {"zscale": "zscale", "min_max": "min-max", "asymmetric_percentile": "percentile (1–100 %)"}


def fetch_oriented(client, survey: str, candid: int) -> dict[str, np.ndarray]:
    """{which: image North up East left (rows top to bottom)} of one alert."""
    out = {}
    for which in CUTOUTS:
        raw = client.request("GET", f"/api/cutouts/{survey}/{int(candid)}/{which}/fits", raw=True).content
        image, header = read_fits(raw)
        out[which] = north_up_east_left(image, header, survey)
    return out


def cutout_image(image: np.ndarray, which: str, stretch: str, interval: str, cmap: str) -> hv.Image:
    h, w = image.shape
    scaled = normalize(image, stretch, interval)
    return hv.Image(scaled, bounds=(0, 0, w, h)).opts(
        cmap=cmap, clim=(0, 1), xaxis=None, yaxis=None, width=260, height=260, title=which,
        toolbar=None, default_tools=[], active_tools=[])


class CutoutView:
    def __init__(self, client, survey: str):
        self.client, self.survey = client, survey
        self.stretch = pn.widgets.RadioButtonGroup(name="stretch", options=list(STRETCHES), value="log",
                                                   css_classes=["kw-stretch"])
        self.interval = pn.widgets.Select(name="interval", value="zscale",
                                          options={INTERVAL_LABELS[i]: i for i in INTERVALS})
        self.cmap = pn.widgets.Select(name="colour map", options=list(CMAPS), value="bone")
        self.images: dict[str, np.ndarray] = {}
        self.title = pn.pane.Markdown("")
        self.row = pn.Row()
        for w in (self.stretch, self.interval, self.cmap):
            w.param.watch(lambda *_: self.render(), "value")
        self.view = pn.Column(self.title, pn.Row(self.stretch, self.interval, self.cmap), self.row,
                              pn.pane.HTML("<small>North up, East left</small>"))

    def show(self, candid: int) -> None:
        self.images = fetch_oriented(self.client, self.survey, candid)
        self.title.object = f"**Cutouts of alert {candid}**"
        self.render()

    def render(self) -> None:
        self.row.objects = [
            pn.pane.HoloViews(cutout_image(self.images[w], w, self.stretch.value, self.interval.value, self.cmap.value),
                              css_classes=["kw-cutout", f"kw-cutout-{w}"], linked_axes=False)
            for w in CUTOUTS if w in self.images]
