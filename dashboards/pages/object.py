"""Object page: cutouts of an alert (with FITS and JSON downloads), the light curve, ML scores,
cross-matches, the user's classification labels and every alert of the object (click one to see
its cutouts and labels). Deep link: ``object?survey=ztf&id=ZTF20aakyoez`` (and
``object/ztf/ZTF20aakyoez``, redirected there)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import panel as pn
from astropy.coordinates import angular_separation
from astropy.time import Time

from dashboards.cutout_view import FETCHERS, CutoutView, fetch_fits
from dashboards.labels_view import LabelsView
from dashboards.lightcurve_view import light_curve_plot
from dashboards.session import arg, banner, start
from kowalski.client import NO_CUTOUTS, light_curve_frame, survey_bands

OBJECT_ID = re.compile(r"[A-Za-z0-9_.+-]{3,40}")
ALERT_COLUMNS = ["candid", "date", "jd", "band", "magpsf", "sigmapsf", "drb", "programid", "isdiffpos", "ra", "dec"]


def alerts_frame(alerts: list[dict], survey_bands: dict) -> pd.DataFrame:
    rows = []
    for a in alerts:
        c = a.get("candidate", {})
        row = {k: c.get(k) for k in ("candid", "jd", "magpsf", "sigmapsf", "drb", "programid", "isdiffpos", "ra", "dec")}
        row["candid"] = a.get("candid", row["candid"])
        row["band"] = survey_bands.get(c.get("fid"), c.get("fid"))
        row["date"] = Time(c["jd"], format="jd").iso[:19] if c.get("jd") else None
        for model, score in (a.get("classifications") or {}).items():
            if not model.endswith("_version"):
                row[model] = score
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["candid"] = df["candid"].astype(str)  # 64-bit ids: exact in the browser
    first = [c for c in ALERT_COLUMNS if c in df]
    return df[first + [c for c in df.columns if c not in first]].sort_values("jd", ascending=False, ignore_index=True)


def scores_frame(alert: dict) -> pd.DataFrame:
    cls = alert.get("classifications") or {}
    rows = [{"model": m, "score": s, "version": cls.get(f"{m}_version", "")} for m, s in cls.items()
            if not m.endswith("_version")]
    c = alert.get("candidate", {})
    rows += [{"model": k, "score": c[k], "version": "in the alert packet"} for k in ("drb", "rb") if c.get(k) is not None]
    return pd.DataFrame(rows, columns=["model", "score", "version"])


def _position(doc: dict) -> tuple[float, float] | None:
    if isinstance(doc.get("ra"), (int, float)) and isinstance(doc.get("dec"), (int, float)):
        return float(doc["ra"]), float(doc["dec"])
    geo = ((doc.get("coordinates") or {}).get("radec_geojson") or {}).get("coordinates")
    if geo and len(geo) == 2:
        return float(geo[0]) + 180.0, float(geo[1])
    return None


def crossmatch_frames(aux: dict, ra: float, dec: float) -> dict[str, pd.DataFrame]:
    """{catalog: matches with ``separation_arcsec`` from the object's position, nearest first}."""
    out = {}
    for name, matches in (aux.get("cross_matches") or {}).items():
        if not matches:
            continue
        rows = []
        for m in matches:
            pos = _position(m)
            sep = np.degrees(angular_separation(*np.radians([ra, dec, *pos]))) * 3600 if pos else np.nan
            flat = {k: v for k, v in m.items() if not isinstance(v, (dict, list))}
            rows.append({"separation_arcsec": round(float(sep), 3), **flat})
        out[name] = pd.DataFrame(rows).sort_values("separation_arcsec", ignore_index=True)
    return out


SMALL_TABLE_CSS = ("table { border-collapse: collapse; font-size: 13px } th, td { padding: 3px 10px; text-align: left;"
                   " border-bottom: 1px solid #ddd }")


def small_table(df: pd.DataFrame, **kw) -> pn.pane.HTML:
    """A few rows (scores, a catalog's matches) as a plain HTML table (escaped): one Bokeh model
    where a Tabulator is 3 per column and 4 more, and the page's server time goes mostly to its models."""
    return pn.pane.HTML(df.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}"),
                        stylesheets=[SMALL_TABLE_CSS], **kw)


def table(df: pd.DataFrame, **kw) -> pn.widgets.Tabulator:
    kw.setdefault("sizing_mode", None if "width" in kw else "stretch_width")
    return pn.widgets.Tabulator(df, disabled=True, show_index=False, layout="fit_data_table",
                                pagination="local", page_size=10, **kw)


def page():
    session, layout = start("object")
    if session is None:
        return layout
    surveys = session.surveys()
    survey = pn.widgets.Select(name="survey", options=surveys, value=arg("survey", "ztf") if arg("survey", "ztf") in surveys else surveys[0], width=100)
    oid = pn.widgets.TextInput(name="object id", value=arg("id"), placeholder="e.g. ZTF20aakyoez", width=220)
    go = pn.widgets.Button(name="Open", button_type="primary", margin=(24, 10, 10, 10))
    message = pn.Column(sizing_mode="stretch_width")
    body = pn.Column(sizing_mode="stretch_width", css_classes=["kw-object"])
    layout.extend([pn.Row(survey, oid, go), message, body])

    def load(*_):
        message.objects, body.objects = [], []
        name, srv = oid.value.strip(), survey.value
        if not name:
            message.append(banner("Give an object id (e.g. ZTF20aakyoez) to open its page.", "info"))
            return
        if not OBJECT_ID.fullmatch(name):
            message.append(banner(f"{name!r} is not an object id: letters, digits and _.+- only (e.g. ZTF20aakyoez).", "warning"))
            return
        if pn.state.location is not None:
            pn.state.location.update_query(survey=srv, id=name)
        try:
            render(session, srv, name, body)
        except Exception as exc:  # noqa: BLE001 - every failure is a message, never a traceback
            body.objects = []
            message.append(banner(exc))

    go.on_click(load)
    oid.param.watch(load, "enter_pressed")
    pn.state.onload(load)
    return layout


def render(session, survey: str, name: str, body: pn.Column) -> None:
    client, catalog = session.client, session.catalog(survey)
    alerts = client.query("find", {"catalog": catalog, "filter": {session.object_field(survey): name},
                                   "projection": {"_id": 0, **NO_CUTOUTS}}, sort=[["candidate.jd", 1]], limit=10000)
    if not alerts:
        body.append(banner(f"No {survey.upper()} alert of {name} is visible to you (unknown object, or alerts of "
                           f"programs you have no rights to).", "warning"))
        return
    latest = alerts[-1]
    # the object's aux document, the latest alert's labels and stamps at once: the page waits for the slowest only
    labels = LabelsView(client, survey)
    aux_job = FETCHERS.submit(client.object, name, catalog)
    labels_job = FETCHERS.submit(labels.fetch, int(latest["candid"]))
    stamps = fetch_fits(client, survey, int(latest["candid"]))
    aux = aux_job.result()
    bands = survey_bands(survey)
    c = latest.get("candidate", {})
    ra, dec = float(np.median([a["candidate"]["ra"] for a in alerts])), float(np.median([a["candidate"]["dec"] for a in alerts]))
    radec = (latest.get("coordinates") or {}).get("radec_str") or []
    summary = pn.pane.Markdown(
        f"## {name}\n{survey.upper()} · RA, Dec = {ra:.6f}, {dec:+.6f} ({' '.join(map(str, radec))}) · "
        f"{len(alerts)} alert(s) · latest {Time(c['jd'], format='jd').iso[:19]} UTC", css_classes=["kw-summary"])

    cutouts = CutoutView(client, survey, catalog, name)
    cutouts.show(int(latest["candid"]), stamps)
    labels.show(int(latest["candid"]), labels_job.result())

    lc = light_curve_frame(alerts, aux, survey)
    mode = pn.widgets.RadioButtonGroup(options=["magnitude", "flux (µJy)"], value="magnitude")
    lc_pane = pn.pane.Bokeh(light_curve_plot(lc))
    mode.param.watch(lambda e: setattr(lc_pane, "object", light_curve_plot(lc, flux=e.new != "magnitude")), "value")
    counts = lc["kind"].value_counts().to_dict()
    lc_note = pn.pane.Markdown(", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items())),
                               css_classes=["kw-lc-counts"])

    alerts_df = alerts_frame(alerts, bands)
    alerts_table = table(alerts_df, selectable=1, css_classes=["kw-alerts"])

    def on_select(event):
        if event.new:
            candid = int(alerts_df.iloc[event.new[0]]["candid"])
            cutouts.show(candid)
            labels.show(candid)
    alerts_table.param.watch(on_select, "selection")

    xm = crossmatch_frames(aux, ra, dec)
    xm_view = (pn.Tabs(*[(n, small_table(df, sizing_mode="stretch_width", styles={"overflow-x": "auto"}))
                         for n, df in xm.items()]) if xm
               else pn.pane.Markdown("No cross-matches stored for this object."))
    body.extend([
        summary,
        pn.Row(cutouts.view, pn.Column(pn.pane.Markdown("### ML scores (latest alert)"),
                                       small_table(scores_frame(latest), width=380, css_classes=["kw-scores"]),
                                       labels.view)),
        pn.Column(pn.pane.Markdown("### Light curve"), mode, lc_pane, lc_note),
        pn.pane.Markdown("### Cross-matches"), xm_view,
        pn.pane.Markdown("### Alerts (click a row to see its cutouts)"), alerts_table,
    ])
