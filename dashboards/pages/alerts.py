"""Alert browser: search by object id, cone (decimal or sexagesimal, radius with unit), JD/date
range, magnitude, ML-score thresholds and "passed filter F" (the filter's active version run on the
archive over the range), per survey; one page of results at a time fetched from the API
(skip/limit/sort), a sky plot of every result (datashader when there are many), object links, and a
live mode that re-reads the first page as the broker stores new alerts."""

from __future__ import annotations

import pandas as pd
import panel as pn

from dashboards.filter_view import all_filters, passing_candids
from dashboards.search import RADIUS_UNITS, InputError, Search
from dashboards.session import api_message, banner, object_link, start
from dashboards.sky_view import SKY_MAX, sky_plot
from kowalski.client import survey_bands

SORTS = {"newest first": [["candidate.jd", -1]], "newest stored first": [["_id", -1]], "oldest first": [["candidate.jd", 1]],
         "brightest first": [["candidate.magpsf", 1]], "faintest first": [["candidate.magpsf", -1]],
         "object id": [["objectId", 1]]}
PROJECTION = {"_id": 0, "objectId": 1, "objectid": 1, "candid": 1, "candidate.jd": 1, "candidate.ra": 1,
              "candidate.dec": 1, "candidate.magpsf": 1, "candidate.sigmapsf": 1, "candidate.fid": 1,
              "candidate.drb": 1, "candidate.programid": 1, "classifications": 1}
CONE_MAX = 5000  # a cone's results are fetched whole (capped) and paged here
PASSED_MAX = 5000  # alerts of a "passed filter" search (their candids go to the API as one $in)


def rows_frame(docs: list[dict], survey: str, object_field: str, base: str) -> pd.DataFrame:
    bands = survey_bands(survey)
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
        "passed": pn.widgets.Select(name="passed filter", options={"(any)": 0}, value=0, width=200),
        "sort": pn.widgets.Select(name="sort", options=list(SORTS), value="newest first", width=150),
    }
    try:  # the filters of the user's groups; without them the search still works
        w["passed"].options = {"(any)": 0, **{f"#{f['filter_id']} {f.get('catalog', '')}": int(f["filter_id"])
                                              for f in all_filters(session.client)}}
    except Exception as exc:  # noqa: BLE001 - a message, never a traceback
        w["passed"].disabled = True
        w["passed"].description = f"filters unavailable: {api_message(exc)}"
    live = pn.widgets.Toggle(name="live", value=False, width=80, margin=(24, 10, 10, 10), css_classes=["kw-live"])
    search_btn = pn.widgets.Button(name="Search", button_type="primary", margin=(24, 10, 10, 10))
    prev_btn, next_btn = pn.widgets.Button(name="◀ previous", width=110), pn.widgets.Button(name="next ▶", width=110)
    status = pn.pane.Markdown("", css_classes=["kw-status"])
    message = pn.Column(sizing_mode="stretch_width")
    results = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_data_table",
                                   formatters={"object": {"type": "html"}}, hidden_columns=["objectId"],
                                   sizing_mode="stretch_width", height=520, css_classes=["kw-results"])
    sky = pn.pane.HoloViews(sky_plot(pd.DataFrame(columns=["ra", "dec"]), 0), css_classes=["kw-sky"])
    state = {"page": 0, "total": 0, "cone_rows": None, "query": None, "sky_total": None, "live_from": None, "poll": None}
    layout.extend([
        pn.Row(w["survey"], w["object_id"], w["position"], w["radius"], w["radius_unit"], w["passed"]),
        pn.Row(w["start"], w["end"], w["mag_min"], w["mag_max"], w["scores"], w["sort"], search_btn, live),
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
            if w["passed"].value:
                candids, summary = passing_candids(session.client, w["passed"].value, w["start"].value,
                                                   w["end"].value, w["object_id"].value)
                flt["candid"] = {"$in": candids[:PASSED_MAX]}
                message.append(banner(
                    f"filter #{w['passed'].value} (version {summary.get('fid')}) passed {summary.get('passed')} of "
                    f"{summary.get('alerts')} alerts in the range"
                    + (f"; the first {PASSED_MAX} are searched" if len(candids) > PASSED_MAX else ""), "info"))
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
            message.append(banner(api_message(exc)))
            return
        df = rows_frame(docs, survey, field, pn.state.base_url or "/")
        results.value = df
        total = state["total"]
        if new_search and (state["query"] is None or state["query"][:2] != (catalog, flt) or total != state["sky_total"]):
            # the sky of every result, after the table is on the page (a live poll that found nothing new keeps it)
            state["query"], state["sky_total"] = (catalog, flt, state["cone_rows"]), total
            pn.state.curdoc.add_timeout_callback(draw_sky, 10)
        first = skip + 1 if total else 0
        live_note = "" if state["live_from"] is None else f" · live: {total - state['live_from']:+d} since it was turned on"
        status.object = f"alerts {first}–{skip + len(df)} of {total}{live_note}"
        prev_btn.disabled = state["page"] == 0
        next_btn.disabled = skip + len(df) >= total

    def draw_sky():
        catalog, flt, cone_rows = state["query"]
        try:
            if cone_rows is not None:
                rows = [r.get("candidate", {}) for r in cone_rows]
            else:
                rows = [r.get("candidate", {}) for r in session.client.query(
                    "find", {"catalog": catalog, "filter": flt, "projection": {"_id": 0, "candidate.ra": 1, "candidate.dec": 1}},
                    limit=SKY_MAX)]
            sky.object = sky_plot(pd.DataFrame(rows, columns=["ra", "dec"]), state["total"])
        except Exception as exc:  # noqa: BLE001 - the table stays; the sky says why it is missing
            message.append(banner(f"sky plot: {api_message(exc)}", "warning"))

    def poll():
        if state["page"] == 0 and state["cone_rows"] is None:
            fetch(True)

    def toggle_live(event):
        if event.new:
            w["sort"].value = "newest stored first"
            fetch(True)
            state["live_from"] = state["total"]
            state["poll"] = pn.state.add_periodic_callback(poll, period=int(float(session.dash["live_interval_s"]) * 1000))
        else:
            if state["poll"] is not None:
                state["poll"].stop()
            state["poll"], state["live_from"] = None, None

    def turn(step):
        state["page"] = max(0, state["page"] + step)
        fetch(False)

    search_btn.on_click(lambda *_: fetch(True))
    prev_btn.on_click(lambda *_: turn(-1))
    next_btn.on_click(lambda *_: turn(1))
    live.param.watch(toggle_live, "value")
    pn.state.onload(lambda: fetch(True))
    return layout
