"""The light curve per band: detections with error bars, non-detections as upper limits (▼) and
forced photometry (□), in magnitude (y inverted) or flux (µJy).

Drawn with Bokeh directly: the same plot through HoloViews (one element per band and kind, then
an overlay) took 315 ms per object page on the server, the largest part of the page's p95; this
takes ~30 ms (profiled 2026-12-02, docs/benchmarks.md)."""

from __future__ import annotations

import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

COLOURS = {"g": "#2ca02c", "r": "#d62728", "i": "#e7a100"}
KINDS = ("detection", "upper_limit", "forced")


def _layers(lc: pd.DataFrame, flux: bool) -> dict[str, pd.DataFrame]:
    """{layer: points with mjd, y, err, colour, label}: detections, upper limits, forced photometry
    and (in magnitude) forced points without a magnitude (S/N < 3), which are limits."""
    ycol, ecol = ("flux_ujy", "flux_ujy_err") if flux else ("magpsf", "sigmapsf")
    out = {}
    for kind in KINDS:
        pts = lc[lc["kind"] == kind]
        if kind == "upper_limit" and flux:
            continue
        if kind == "forced" and not flux:
            lim = pts[pts["magpsf"].isna() & pts["diffmaglim"].notna()]
            out["forced_limit"] = lim.assign(y=lim["diffmaglim"], err=float("nan"))
        y = "diffmaglim" if (kind == "upper_limit" and not flux) else ycol
        pts = pts[pts[y].notna()]
        out[kind] = pts.assign(y=pts[y], err=pts[ecol] if kind != "upper_limit" else float("nan"))
    for name, df in out.items():
        df["colour"] = [COLOURS.get(str(b), "#555555") for b in df["band"]]
        df["label"] = [f"{b} {name.replace('_', ' ')}" for b in df["band"]]
    return {k: v for k, v in out.items() if not v.empty}


STYLE = {"detection": ("circle", 8, 0.9), "upper_limit": ("inverted_triangle", 9, 0.45),
         "forced": ("square", 6, 0.45), "forced_limit": ("inverted_triangle", 6, 0.25)}


def light_curve_plot(lc: pd.DataFrame, flux: bool = False):
    """Every point in one glyph renderer (marker, size and opacity per point: bands by colour,
    each band and kind a legend entry) and every error bar in another: one renderer per kind of
    point made the page's document ~40 Bokeh models larger, and the models, not the points, are
    what the server pays for when it sends the page."""
    ylabel = "flux (µJy)" if flux else "magnitude (AB)"
    fig = figure(width=760, height=360, title="light curve", x_axis_label="MJD", y_axis_label=ylabel,
                 toolbar_location="above", tools="pan,box_zoom,wheel_zoom,reset,save", css_classes=["kw-lightcurve"])
    fig.y_range.flipped = not flux
    layers = _layers(lc, flux)
    if not layers:
        fig.title.text = "no photometry"
        return fig
    pts = pd.concat([df.assign(marker=STYLE[name][0], size=STYLE[name][1], alpha=STYLE[name][2])
                     for name, df in layers.items()], ignore_index=True)
    src = ColumnDataSource({c: pts[c].to_numpy() for c in ("mjd", "y", "err", "colour", "label", "marker", "size", "alpha")})
    drawn = fig.scatter("mjd", "y", source=src, marker="marker", size="size", color="colour", alpha="alpha",
                        legend_group="label")
    e = pts[pts["err"].notna()]
    if not e.empty:
        fig.segment(e["mjd"], e["y"] - e["err"], e["mjd"], e["y"] + e["err"], color=list(e["colour"]), alpha=0.5)
    fig.add_tools(HoverTool(renderers=[drawn], tooltips=[("", "@label"), ("MJD", "@mjd{0.0000}"), (ylabel, "@y{0.000}")]))
    fig.add_layout(fig.legend[0], "right")
    return fig
