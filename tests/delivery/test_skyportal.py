"""SkyPortal delivery against the stand-in (tests/skyportal_standin.py), on the real 20231012
alerts: SkyPortal down, then failing one endpoint, then up -> everything arrives once.

Each test has its own database (outbox) and its own stand-in, not started until the test says so."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from broker.delivery import Delivery
from broker.delivery.skyportal import photometry
from kowalski.surveys import get_survey
from broker.filters.runner import FilterRunner
from kowalski import db
from tests.api.conftest import free_port
from tests.delivery.test_filter_runner import LOOSE, add_filter
from tests.skyportal_standin import SkyPortalStandIn

GROUPS = {1: {"name": "Group One", "nickname": "one", "filters": [{"id": 1, "name": "loose"}]},
          2: {"name": "Group Two", "filters": [{"id": 6, "name": "saver"}]}}


@pytest.fixture
def setup(night):
    config = night
    add_filter(config, 1, LOOSE)
    add_filter(config, 6, [{"$match": {"candidate.drb": {"$gt": 0.99}}},
                           {"$project": {"annotations.magpsf": "$candidate.magpsf", "candid": 1}}],
               group_id=2, update_annotations=True,
               autosave={"active": True, "comment": "saved by filter 6", "ignore_group_ids": [3]},
               auto_followup={"active": True, "allocation_id": 9, "priority_order": "asc", "comment": "observe",
                              "payload": {"observation_type": "IFU"},
                              "pipeline": json.dumps([{"$match": {"candidate.magpsf": {"$lt": 19}}}])})
    sp = SkyPortalStandIn(token="sp-token", port=free_port(), groups=GROUPS)
    config["delivery"]["skyportal"].update({"enabled": True, "url": sp.url, "token": "sp-token", "timeout_s": 5})
    FilterRunner(config, "ztf").process(list(db.get_db(config)["ZTF_alerts"].find({})))
    yield config, sp
    sp.stop()


def make_due(cfg):
    db.filter_outbox(cfg, "ztf").update_many({}, {"$set": {"next_at.skyportal": dt.datetime(2000, 1, 1)}})


def test_down_then_failing_then_up_delivers_everything_once(setup):
    cfg, sp = setup
    outbox = db.filter_outbox(cfg, "ztf")
    docs = list(outbox.find({}))
    assert len(docs) > 22 and all(d["pending"] == ["skyportal"] for d in docs)

    # 1. SkyPortal is down: nothing is lost, everything backs off (an hour: the next attempt cannot
    #    come due while the test looks, however slow the machine)
    down = Delivery(cfg, "ztf")
    down.base = down.max = 3600
    res = down.run_once()
    assert res["skyportal"] == {"delivered": 0, "failed": len(docs)}
    d = outbox.find_one({"filter_id": 1})
    assert d["attempts"]["skyportal"] == 1 and "ConnectionError" in d["last_error"]["skyportal"]
    assert d["next_at"]["skyportal"] > dt.datetime.utcnow() + dt.timedelta(minutes=30)
    assert Delivery(cfg, "ztf").run_once()["skyportal"] == {"delivered": 0, "failed": 0}  # backing off

    # 2. SkyPortal is back but its thumbnail endpoint fails: the steps before it are done once
    sp.start()
    sp.fail_on = ("POST", "/api/thumbnail")
    make_due(cfg)
    res = Delivery(cfg, "ztf").run_once()
    assert res["skyportal"] == {"delivered": 0, "failed": len(docs)}
    assert len(sp.calls("POST", "/api/candidates")) == len(docs)
    d = outbox.find_one({"_id": d["_id"]})
    assert d["attempts"]["skyportal"] == 2 and "/api/thumbnail -> 500" in d["last_error"]["skyportal"]
    assert set(d["done"]["skyportal"]) == {"candidate", "annotations", "photometry"}

    # 3. all well: a new process (fresh Delivery) resumes where each item stopped
    sp.fail_on = None
    make_due(cfg)
    res = Delivery(cfg, "ztf").run_once()
    assert res["skyportal"] == {"delivered": len(docs), "failed": 0}
    assert outbox.count_documents({"pending": "skyportal"}) == 0
    assert Delivery(cfg, "ztf").run_once()["skyportal"] == {"delivered": 0, "failed": 0}

    # every request was valid by SkyPortal's documented API
    assert sp.invalid == []
    # each (object, filter, alert) candidate arrived exactly once
    posted = Counter((c["body"]["id"], f, c["body"]["passing_alert_id"])
                     for c in sp.calls("POST", "/api/candidates") for f in c["body"]["filter_ids"])
    assert posted == Counter((d["objectId"], d["filter_id"], d["candid"]) for d in docs)
    assert all(c["body"]["origin"] == "Kowalski" for c in sp.calls("POST", "/api/candidates"))
    # thumbnails: new/ref/sub once per alert (one alert may pass two filters)
    candids = {d["candid"] for d in docs}
    thumbs = Counter(t for t in sp.calls("POST", "/api/thumbnail") for t in [t["body"]["ttype"]])
    assert thumbs == {"new": len(candids), "ref": len(candids), "sub": len(candids)}
    # annotations: one per (object, filter origin)
    origins = Counter((a["obj_id"], a["origin"]) for a in sp.annotations)
    assert set(origins.values()) == {1}
    assert {o for _, o in origins} == {"one:loose", "Group Two:saver"}
    # photometry: each alert's light curve per stream, forced photometry with the duplicate flags
    puts = sp.calls("PUT", "/api/photometry")
    assert puts and all(p["body"]["instrument_id"] == 7 for p in puts)
    fp = [p for p in puts if p["query"].get("duplicate_ignore_flux") == "true"]
    assert fp and all(set(p["body"]["origin"]) == {"alert_fp"} for p in fp)
    # autosave into group 2 with its comment, once per object; follow-up for the bright ones
    saved = {d["objectId"] for d in docs if d["filter_id"] == 6}
    assert set(sp.sources) == saved and all(g == {2} for g in sp.sources.values())
    src = sp.calls("POST", "/api/sources")
    assert len(src) == len(saved) and all(s["body"]["ignore_if_in_group_ids"] == {"2": [3]} for s in src)
    assert Counter(c["obj_id"] for c in sp.comments if c["text"] == "saved by filter 6") == Counter(
        {o: 1 for o in saved})
    fu_objs = {d["objectId"] for d in docs if d["filter_id"] == 6 and "auto_followup" in d}
    assert {f["obj_id"] for f in sp.followups} == fu_objs and len(sp.followups) == len(fu_objs)
    assert all(f["allocation_id"] == 9 and f["payload"]["observation_type"] == "IFU" for f in sp.followups)


def test_photometry_as_kowalski(setup):
    """ZTF17aadcvhq's alert 2475433850015010009: flux/fluxerr as Kowalski's make_photometry."""
    cfg, _ = setup
    alert = db.get_db(cfg)["ZTF_alerts"].find_one({"candid": 2475433850015010009})
    aux = db.get_db(cfg)["ZTF_alerts_aux"].find_one({"_id": "ZTF17aadcvhq"})
    from kowalski.filters.inputs import filter_input

    view = filter_input(alert, aux, [1, 2, 3], "ztf")
    calls = photometry(alert, view, {0: 3, 1: 1, 2: 2, 3: 3}, 7, "ZTF17aadcvhq", bands=get_survey("ztf", cfg).skyportal.bands)
    lc = [b for p, b in calls if not p]
    c = alert["candidate"]
    body = next(b for b in lc if any(abs(m - (c["jd"] - 2400000.5)) < 1e-9 for m in b["mjd"]))
    i = next(i for i, m in enumerate(body["mjd"]) if abs(m - (c["jd"] - 2400000.5)) < 1e-9)
    flux = 10 ** (-0.4 * (c["magpsf"] - 23.9)) * (1 if c["isdiffpos"] in ("t", "1") else -1)
    assert body["flux"][i] == pytest.approx(flux)
    assert body["fluxerr"][i] == pytest.approx(abs(c["sigmapsf"] * flux * 2.302585092994046 / 2.5))
    assert body["filter"][i] == {1: "ztfg", 2: "ztfr", 3: "ztfi"}[c["fid"]] and body["zp"][i] == 23.9
    n_rows = sum(len(b["mjd"]) for b in lc)
    assert n_rows <= 1 + len(view["prv_candidates"])
    assert all(f is None or isinstance(f, float) for b in lc for f in b["flux"])


def test_refused_items_are_parked_after_max_attempts(setup):
    """A request SkyPortal refuses (here: a group it does not know) is retried, then parked with the
    reason once delivery.max_attempts is reached; it stays in the outbox, nothing else is affected."""
    cfg, sp = setup
    sp.start()
    outbox = db.filter_outbox(cfg, "ztf")
    n = outbox.count_documents({})
    assert Delivery(cfg, "ztf").run_once()["skyportal"] == {"delivered": n, "failed": 0}  # the good items
    doc = dict(outbox.find_one({"filter_id": 1}))
    doc.update({"_id": f"{doc['candid']}:99", "filter_id": 99, "group_id": 42, "pending": ["skyportal"],
                "attempts": {"skyportal": 0}, "next_at": {"skyportal": dt.datetime(2000, 1, 1)}, "done": {}})
    doc.pop("delivered_at", None)
    outbox.insert_one(doc)
    d = Delivery(cfg, "ztf")
    d.max_attempts, d.base = 2, 0
    assert d.run_once()["skyportal"] == {"delivered": 0, "failed": 1}  # a pass without progress stops
    assert outbox.find_one({"_id": doc["_id"]})["pending"] == ["skyportal"]
    assert d.run_once()["skyportal"] == {"delivered": 0, "failed": 1}
    parked = outbox.find_one({"_id": doc["_id"]})
    assert parked["pending"] == [] and parked["attempts"]["skyportal"] == 2 and "gave_up" in parked
    assert "Cannot find group with id 42" in parked["last_error"]["skyportal"]
    assert d.run_once()["skyportal"] == {"delivered": 0, "failed": 0}
    assert outbox.count_documents({"pending": "skyportal"}) == 0 and outbox.count_documents({"gave_up": {
        "$exists": True}}) == 1
    assert sp.invalid == []  # refused by a SkyPortal check (an unknown group), not by a malformed request
    assert all(c["body"]["filter_ids"] != [99] for c in sp.calls("POST", "/api/candidates"))
