"""Science / template / difference cutouts side by side, from the FITS the API serves, North up
East left, with stretch, interval and colour-map controls (astropy.visualization scaling), and the
FITS of each stamp and the alert's raw JSON to download.

Each stamp is a small PNG (its own pixels, scaled up by the browser without smoothing) in one HTML
pane: the page's server time is mostly turning Bokeh models into the document patch, and a Bokeh
figure per stamp was ~26 models (axes, grids, ranges, renderer...) against one (profiled
2026-12-02); three HoloViews images had cost 165 ms per page load before that. A new stretch,
interval or colour map re-renders the three PNGs (~1 ms each)."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import panel as pn

from kowalski.cutouts import CMAPS, INTERVALS, STRETCHES, north_up_east_left, read_fits, render_png
from kowalski.surveys import CUTOUT_KINDS, get_survey

CUTOUTS = CUTOUT_KINDS
INTERVAL_LABELS = {"zscale": "zscale", "min_max": "min-max", "asymmetric_percentile": "percentile (1–100 %)"}
SIZE = 260  # px on the page
FETCHERS = ThreadPoolExecutor(6, thread_name_prefix="fetch")  # a page's API calls at once (stamps, aux, labels)


def fetch_fits(client, survey: str, candid: int) -> dict[str, bytes]:
    """{which: the FITS bytes the API serves} of one alert's three stamps, fetched concurrently."""
    def one(which):
        return client.request("GET", f"/api/cutouts/{survey}/{int(candid)}/{which}/fits", raw=True).content
    return dict(zip(CUTOUTS, FETCHERS.map(one, CUTOUTS)))


def oriented(raw: dict[str, bytes], survey: str) -> dict[str, np.ndarray]:
    """{which: image North up East left (rows top to bottom)}."""
    layout = get_survey(survey).cutout_layout
    out = {}
    for which, data in raw.items():
        image, header = read_fits(data)
        out[which] = north_up_east_left(image, header, layout)
    return out


def alert_json(client, catalog: str, candid: int) -> bytes:
    """The stored alert exactly as the API's ``find`` answers it (cutouts as extended-JSON binary)."""
    answer = client.request("POST", "/api/queries", {"query_type": "find", "query": {
        "catalog": catalog, "filter": {"candid": int(candid)}, "projection": {"_id": 0}}}, raw=True)
    docs = json.loads(answer.text).get("data") or []
    if not docs:
        raise LookupError(f"alert {candid} is not visible in {catalog}")
    return json.dumps(docs[0], indent=1).encode()


def cutout_html(which: str, png: bytes | None = None) -> str:
    """A titled image ``SIZE`` px wide showing ``png``'s pixels unsmoothed (a grey square before it is known)."""
    img = (f'<img class="kw-cutout-img kw-cutout-img-{which}" alt="{which}" width="{SIZE}" style="image-rendering:'
           f'pixelated;display:block" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else
           f'<div style="width:{SIZE}px;height:{SIZE}px;background:#eee"></div>')
    return f'<div style="font:bold 12px sans-serif;margin-bottom:4px">{which}</div>{img}'


class CutoutView:
    def __init__(self, client, survey: str, catalog: str, object_id: str):
        self.client, self.survey, self.catalog, self.object_id = client, survey, catalog, object_id
        self.stretch = pn.widgets.RadioButtonGroup(name="stretch", options=list(STRETCHES), value="log",
                                                   css_classes=["kw-stretch"])
        self.interval = pn.widgets.Select(name="interval", value="zscale",
                                          options={INTERVAL_LABELS[i]: i for i in INTERVALS})
        self.cmap = pn.widgets.Select(name="colour map", options=list(CMAPS), value="bone")
        self.candid: int | None = None
        self.raw: dict[str, bytes] = {}
        self.images: dict[str, np.ndarray] = {}
        self.title = pn.pane.Markdown("")
        self.panes = {w: pn.pane.HTML(cutout_html(w), margin=(5, 8), css_classes=["kw-cutout", f"kw-cutout-{w}"])
                      for w in CUTOUTS}
        self.row = pn.Row(*self.panes.values())
        for w in (self.stretch, self.interval, self.cmap):
            w.param.watch(lambda *_: self.render(), "value")
        self.downloads = {w: pn.widgets.FileDownload(callback=self._stamp(w), label=f"{w} FITS", button_type="light",
                                                     css_classes=[f"kw-download-{w}"], width=130)
                          for w in CUTOUTS}
        self.downloads["json"] = pn.widgets.FileDownload(callback=self._json, label="alert JSON", button_type="light",
                                                         css_classes=["kw-download-json"], width=130)
        self.view = pn.Column(self.title, pn.Row(self.stretch, self.interval, self.cmap), self.row,
                              pn.pane.HTML("<small>North up, East left</small>"),
                              pn.Row(*self.downloads.values()))

    def _stamp(self, which: str):
        return lambda: io.BytesIO(self.raw[which])

    def _json(self):
        return io.BytesIO(alert_json(self.client, self.catalog, self.candid))

    def show(self, candid: int, raw: dict[str, bytes] | None = None) -> None:
        """Show an alert's stamps (``raw``: its FITS when already fetched)."""
        self.raw = raw or fetch_fits(self.client, self.survey, candid)
        self.images = oriented(self.raw, self.survey)
        self.candid = int(candid)
        self.title.object = f"**Cutouts of alert {candid}**"
        for which, d in self.downloads.items():
            ext = "json" if which == "json" else "fits"
            d.filename = f"{self.object_id}_{candid}{'' if which == 'json' else '_' + which}.{ext}"
            d.data = None  # a new alert: the next click fetches its file
        self.render()

    def render(self) -> None:
        """Each stamp scaled with the chosen stretch and interval, in the chosen colour map."""
        for w in CUTOUTS:
            if w in self.images:
                png = render_png(self.images[w], self.stretch.value, self.interval.value, self.cmap.value, None)
                self.panes[w].object = cutout_html(w, png)
