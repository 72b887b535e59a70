"""The sky of a search's results: every position as a point up to a few thousand, a datashader
density image above that (rasterized on the server, re-aggregated on zoom), RA increasing to the
left as on the sky."""

from __future__ import annotations

import functools

import holoviews as hv
import pandas as pd

SKY_MAX = 100_000       # positions fetched for the plot (one projected find: RA and Dec only)
POINTS_MAX = 3_000      # above this many, a datashader image instead of glyphs
OPTS = dict(width=440, height=330, invert_xaxis=True, xlabel="RA (deg)", ylabel="Dec (deg)")


@functools.cache
def holoviews_ready() -> None:
    """HoloViews' Bokeh backend, loaded once per Panel server (40 ms a call: it was called for every
    page load, though only this plot uses HoloViews)."""
    hv.extension("bokeh", logo=False)


def sky_plot(positions: pd.DataFrame, total: int):
    """``positions``: columns ra, dec (degrees); ``total``: how many results the search has."""
    holoviews_ready()
    pts = positions[["ra", "dec"]].apply(pd.to_numeric, errors="coerce").dropna()
    shown = f"{len(pts):,}" + (f" of {total:,}" if total > len(pts) else "")
    points = hv.Points(pts, ["ra", "dec"])
    if len(pts) <= POINTS_MAX:
        return points.opts(size=5, color="#1f77b4", tools=["hover"], title=f"sky: {shown} result(s)", **OPTS)
    from holoviews.operation.datashader import dynspread, rasterize
    return dynspread(rasterize(points).opts(cmap="viridis", cnorm="log", colorbar=True, tools=["hover"],
                                            title=f"sky: {shown} results (datashader, alerts per pixel)", **OPTS))
