"""Alert browser: search by object id, cone (decimal or sexagesimal, radius with unit), JD/date
range, magnitude and ML-score thresholds, per survey; one page of results at a time fetched from
the API (skip/limit/sort), a sky plot of the page, and object links."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn

from dashboards.search import RADIUS_UNITS, InputError, Search
from dashboards.session import banner, object_link, start
from kowalski.client import BANDS

SORTS = {"newest first": [["candidate.jd", -1]], "oldest first": [["candidate.jd", 1]],
         "brightest first": [["candidate.magpsf", 1]], "faintest first": [["candidate.magpsf", -1]],
         "object id": [["objectId", 1]]}
PROJECTION = {"_id": 0, "objectId": 1, "objectid": 1, "candid": 1, "candidate.jd": 1, "candidate.ra": 1,
              "candidate.dec": 1, "candidate.magpsf": 1, "candidate.sigmapsf": 1, "candidate.fid": 1,
              "candidate.drb": 1, "candidate.programid": 1, "classifications": 1}
CONE_MAX = 5000  # a cone's results are fetched whole (capped) and paged here


def rows_frame(docs: list[dict], survey: str, object_field: str, base: str) -> pd.DataFrame:
    bands = BANDS.get(survey, {})
    rows = []
    for d in docs:
        c = d.get("candidate", {})
        oid = d.get(object_field) or d.get("objectId") or ""
        row = {"object": object_link(survey, oid, base),
               "objectId": oid, "candid": str(d.get("candid")), "jd": c.get("jd"), "band": bands.get(c.get("fid"), c.get("fid")),
               "magpsf": c.get("magpsf"), "sigmapsf": c.get("sigmapsf"), "ra": c.get("ra"), "dec": c.get("dec"),
               "drb": c.get("drb"), "programid": c.get("programid")}
        if "distance_arcsec" in d:
            row["distance_arcsec"] = round(d["distance_arcsec"], 2)
        for m, s in (d.get("classifications") or {}).items():
            if not m.endswith("_version"):
                row[m] = s
        rows.append(row)
    return pd.DataFrame(rows)


def sky_plot(df: pd.DataFrame) -> hv.Points:
    pts = df[["ra", "dec", "objectId"]].dropna() if not df.empty else pd.DataFrame(columns=["ra", "dec", "objectId"])
    return hv.Points(pts, ["ra", "dec"], ["objectId"]).opts(
        width=420, height=320, size=6, color="#1f77b4", tools=["hover"], invert_xaxis=True,
        xlabel="RA (deg)", ylabel="Dec (deg)", title=f"sky: {len(pts)} alert(s) of this page")


def page():
    session, layout = start("alerts")
    if session is None:
        return layout
    size = int(session.dash["page_size"])
    w = {
        "survey": pn.widgets.Select(name="survey", options=session.surveys(), value="ztf", width=90),
        "object_id": pn.widgets.TextInput(name="object id", placeholder="ZTF20aakyoez", width=150),
        "position": pn.widgets.TextInput(name="cone centre (RA Dec)", placeholder="71.6578 -10.2264 or 04:46:37.9 -10:13:35", width=260),
        "radius": pn.widgets.FloatInput(name="radius", value=5.0, start=0, width=80),
        "radius_unit": pn.widgets.Select(name="unit", options=list(RADIUS_UNITS), value="arcsec", width=90),
        "start": pn.widgets.TextInput(name="from (JD or date)", placeholder="2023-10-12", width=140),
        "end": pn.widgets.TextInput(name="to (JD or date)", placeholder="2460231.5", width=140),
        "mag_min": pn.widgets.FloatInput(name="mag ≥", value=None, width=80),
        "mag_max": pn.widgets.FloatInput(name="mag ≤", value=None, width=80),
        "scores": pn.widgets.TextInput(name="scores", placeholder="bts >= 0.8, drb > 0.5", width=180),
        "sort": pn.widgets.Select(name="sort", options=list(SORTS), value="newest first", width=130),
    }
    search_btn = pn.widgets.Button(name="Search", button_type="primary", margin=(24, 10, 10, 10))
    prev_btn, next_btn = pn.widgets.Button(name="◀ previous", width=110), pn.widgets.Button(name="next ▶", width=110)
    status = pn.pane.Markdown("", css_classes=["kw-status"])
    message = pn.Column(sizing_mode="stretch_width")
    results = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_data_table",
                                   formatters={"object": {"type": "html"}}, hidden_columns=["objectId"],
                                   sizing_mode="stretch_width", height=520, css_classes=["kw-results"])
    sky = pn.pane.HoloViews(sky_plot(pd.DataFrame()), css_classes=["kw-sky"])
    state = {"page": 0, "total": 0, "cone_rows": None}
    layout.extend([
        pn.Row(w["survey"], w["object_id"], w["position"], w["radius"], w["radius_unit"]),
        pn.Row(w["start"], w["end"], w["mag_min"], w["mag_max"], w["scores"], w["sort"], search_btn),
        message, pn.Row(prev_btn, next_btn, status), pn.Row(results, sky, sizing_mode="stretch_width")])

    def fetch(new_search: bool):
        message.objects = []
        survey = w["survey"].value
        catalog, field = session.catalog(survey), session.object_field(survey)
        form = Search(**{k: w[k].value or ("" if isinstance(w[k], pn.widgets.TextInput) else None)
                         for k in ("object_id", "position", "radius", "radius_unit", "start", "end", "mag_min", "mag_max", "scores")},
                      sort=SORTS[w["sort"].value])
        try:
            flt = form.mongo_filter()
            if form.object_id.strip():
                flt[field] = flt.pop("objectId")
            cone = form.cone()
            if new_search:
                state["page"] = 0
            skip = state["page"] * size
            if cone:
                if new_search or state["cone_rows"] is None:
                    ra, dec, r = cone
                    data = session.client.query("cone_search", {
                        "object_coordinates": {"cone_search_radius": r, "cone_search_unit": "arcsec", "radec": {"target": [ra, dec]}},
                        "catalogs": {catalog: {"filter": flt, "projection": PROJECTION}}}, limit=CONE_MAX, sort=form.sort)
                    state["cone_rows"] = data.get(catalog, {}).get("target", [])
                state["total"] = len(state["cone_rows"])
                docs = state["cone_rows"][skip:skip + size]
            else:
                state["cone_rows"] = None
                if new_search:
                    state["total"] = session.client.query("count_documents", {"catalog": catalog, "filter": flt})
                docs = session.client.query("find", {"catalog": catalog, "filter": flt, "projection": PROJECTION},
                                            sort=form.sort, skip=skip, limit=size)
        except InputError as exc:
            message.append(banner(str(exc), "warning"))
            return
        except Exception as exc:  # noqa: BLE001 - a message, never a traceback
            message.append(banner(exc))
            return
        df = rows_frame(docs, survey, field, pn.state.base_url or "/")
        results.value = df
        sky.object = sky_plot(df)
        total = state["total"]
        first = skip + 1 if total else 0
        status.object = f"alerts {first}–{skip + len(df)} of {total}"
        prev_btn.disabled = state["page"] == 0
        next_btn.disabled = skip + len(df) >= total

    def turn(step):
        state["page"] = max(0, state["page"] + step)
        fetch(False)

    search_btn.on_click(lambda *_: fetch(True))
    prev_btn.on_click(lambda *_: turn(-1))
    next_btn.on_click(lambda *_: turn(1))
    pn.state.onload(lambda: fetch(True))
    return layout
