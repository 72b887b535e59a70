"""The light curve per band: detections with error bars, non-detections as upper limits (▼) and
forced photometry (□), in magnitude (y inverted) or flux (µJy)."""

from __future__ import annotations

import holoviews as hv
import pandas as pd

COLOURS = {"g": "#2ca02c", "r": "#d62728", "i": "#e7a100"}
KINDS = {"detection": ("circle", 8), "upper_limit": ("inverted_triangle", 9), "forced": ("square", 6)}


def light_curve_plot(lc: pd.DataFrame, flux: bool = False) -> hv.Overlay:
    layers = []
    ycol, ecol, ylabel = ("flux_ujy", "flux_ujy_err", "flux (µJy)") if flux else ("magpsf", "sigmapsf", "magnitude (AB)")
    for band, g in lc.groupby("band", sort=True):
        colour = COLOURS.get(str(band), "#555555")
        for kind, (marker, size) in KINDS.items():
            pts = g[g["kind"] == kind]
            y = "diffmaglim" if (kind == "upper_limit" and not flux) else ycol
            if kind == "upper_limit" and flux:
                continue
            if kind == "forced" and not flux:
                # forced points without a magnitude (S/N < 3) are limits
                lim = pts[pts["magpsf"].isna() & pts["diffmaglim"].notna()]
                if not lim.empty:
                    layers.append(hv.Scatter(lim, "mjd", ("diffmaglim", ylabel), label=f"{band} forced limit").opts(
                        color=colour, marker="inverted_triangle", size=6, alpha=0.25))
            pts = pts[pts[y].notna()]
            if pts.empty:
                continue
            label = f"{band} {kind.replace('_', ' ')}"
            layers.append(hv.Scatter(pts, "mjd", (y, ylabel), label=label).opts(
                color=colour, marker=marker, size=size, alpha=0.9 if kind == "detection" else 0.45,
                tools=["hover"]))
            if kind != "upper_limit" and pts[ecol].notna().any():
                e = pts[pts[ecol].notna()]
                layers.append(hv.ErrorBars((e["mjd"], e[y], e[ecol]), "mjd", [(y, ylabel), "err"]).opts(
                    color=colour, alpha=0.5))
    if not layers:
        return hv.Overlay([hv.Scatter([], "mjd", ylabel)]).opts(title="no photometry")
    return hv.Overlay(layers).opts(
        hv.opts.Overlay(width=760, height=360, invert_yaxis=not flux, legend_position="right",
                        xlabel="MJD", ylabel=ylabel, title="light curve", toolbar="above"))
