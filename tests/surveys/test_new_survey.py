"""A new survey from one module plus config, working across broker, filters, API rights and cutouts.

The survey (``tests/surveys/demo_survey.py``) renames every field the rest of the system could
have hard-coded: object id ``sourceName``, program id ``candidate.program`` / ``program``, cutouts
``stamp_*``, a 10-day filter history window. Its alerts are the real ZTF night of 2023-10-12, every
other alert and every other history point marked program 2 (a partnership's, not public).
"""

from __future__ import annotations

import gzip
import io
import os
import threading
import uuid
from pathlib import Path

import fastavro
import pytest
import yaml

from broker.consumer import AlertBroker
from broker.produce import publish
from kowalski import db
from kowalski.config import deep_merge, load_config
from kowalski.surveys import get_survey
from tests.api.conftest import Api, start_server, stop_server
from tests.broker.test_broker_kafka import _wait, committed
from tests.conftest import ROOT, shared_data
from tests.delivery.test_filter_runner import add_filter

NIGHT = ("alerts", "kowalski", "ztf_alerts", "20231012")
START, END = 2460229.9338542, 2460230.9338542  # the night, as a /test range
FILTER = [{"$match": {"candid": {"$gt": 0}}},
          {"$project": {"_id": 0, "candid": 1, "sourceName": 1, "program": "$candidate.program",
                        "history": {"$map": {"input": {"$ifNull": ["$prv_candidates", []]}, "as": "p",
                                             "in": {"jd": "$$p.jd", "program": "$$p.program"}}}}}]


def partnership_night() -> list[tuple[str, bytes]]:
    """The night's messages, odd ones and odd history points re-encoded as program 2."""
    out = []
    for i, path in enumerate(sorted(shared_data(*NIGHT).glob("*.avro"))):
        reader = fastavro.reader(io.BytesIO(path.read_bytes()))
        schema, records = reader.writer_schema, list(reader)
        for r in records:
            if i % 2:
                r["candidate"]["programid"] = 2
            for k, p in enumerate(r.get("prv_candidates") or []):
                if k % 2:
                    p["programid"] = 2
        buf = io.BytesIO()
        fastavro.writer(buf, schema, records)
        out.append((path.name, buf.getvalue()))
    return out


@pytest.fixture(scope="module")
def demo(config, tmp_path_factory):
    """Config with the demo survey (its own topic), the night ingested by the broker, and an API."""
    topic = f"demo_20231012_t{uuid.uuid4().hex[:8]}"
    local = Path(os.environ.get("KOWALSKI_CONFIG") or ROOT / "config.yaml")
    base = yaml.safe_load(local.read_text()) or {} if local.exists() else {}
    block = {"definition": "tests.surveys.demo_survey:DEMO", "prefix": "DEMO", "topic_pattern": f"^{topic}$",
             "indexes": [["candid_unique", [["candid", -1]], True], ["sourceName", [["sourceName", -1]]],
                         ["jd", [["candidate.jd", 1]]]]}
    path = tmp_path_factory.mktemp("demo") / "config.yaml"
    path.write_text(yaml.safe_dump(deep_merge(base, {"surveys": {"demo": block}})))
    env = {"KOWALSKI_CONFIG": str(path), "KOWALSKI_DATABASE__NAME": config["database"]["name"]}
    cfg = load_config(environ={**os.environ, **env})
    cfg["broker"]["dask"]["n_workers"] = 1
    add_filter(cfg, 71, FILTER, catalog="DEMO_alerts", permissions=[1])

    publish(cfg["kafka"]["bootstrap_servers"], topic, partnership_night())
    group = f"test-demo-{uuid.uuid4().hex[:8]}"
    broker = AlertBroker(cfg, ["demo"], group_id=group, metrics_port=-1)
    thread = threading.Thread(target=broker.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: committed(cfg, group, topic) == 24, what="the 24 messages stored and committed")
    finally:
        broker.stop()
        thread.join(120)
    proc, url, _ = start_server(cfg, extra_env=env)
    api = Api(url, cfg)
    yield cfg, api
    api.session.close()
    stop_server(proc)


def test_the_broker_stores_it_under_the_definitions_names(demo):
    cfg, _ = demo
    d = db.get_db(cfg)
    alerts = list(d.DEMO_alerts.find({}))
    assert len(alerts) == 24 and d.DEMO_alerts_aux.count_documents({}) == 24
    for a in alerts:
        assert "objectId" not in a and "cutoutScience" not in a and "prv_candidates" not in a
        assert a["candidate"]["program"] in (1, 2) and "programid" not in a["candidate"]
        assert gzip.decompress(a["stamp_science"])[:6] == b"SIMPLE"
    assert sorted(a["candidate"]["program"] for a in alerts) == [1] * 12 + [2] * 12
    aux = d.DEMO_alerts_aux.find_one({"_id": alerts[0]["sourceName"]})
    assert {p["program"] for p in aux["prv_candidates"]} == {1, 2}


def test_filters_see_what_the_definition_allows(demo):
    """The broker's filter step: program-1 alerts only, program-1 history points within 10 days."""
    cfg, api = demo
    d = db.get_db(cfg)
    out = list(db.filter_outbox(cfg, "demo").find({"filter_id": 71}))
    public = {a["candid"]: a for a in d.DEMO_alerts.find({"candidate.program": 1})}
    assert sorted(o["candid"] for o in out) == sorted(public) and len(out) == 12
    old = 0
    for o in out:
        alert = public[o["candid"]]
        jd = alert["candidate"]["jd"]
        aux = d.DEMO_alerts_aux.find_one({"_id": alert["sourceName"]})
        expected = [p["jd"] for p in aux["prv_candidates"] if p["program"] == 1 and jd - p["jd"] < 10]
        assert o["data"]["sourceName"] == alert["sourceName"]
        assert [h["jd"] for h in o["data"]["history"]] == expected
        old += sum(1 for p in aux["prv_candidates"] if p["program"] == 1 and jd - p["jd"] >= 10)
    assert sum(len(o["data"]["history"]) for o in out) > 0 and old > 0  # the window kept some, dropped some
    # the API's backtest of the same filter: the same alerts
    r = api.post("/api/filters/71/test", {"start_date": START, "end_date": END}, token=api.admin_token)
    assert r.status_code == 200, r.text
    assert sorted(x["candid"] for x in r.json()["data"]) == sorted(public)
    assert {h["program"] for x in r.json()["data"] for h in x["history"]} == {1}


def users(api) -> tuple[str, str]:
    """Tokens of a public user and of one granted the demo survey's program 2 (created once)."""
    api.add_user("demo_public", "demo-public-pw")
    api.add_user("demo_partner", "demo-partner-pw", permissions={"demo": [2]})
    return api.token("demo_public", "demo-public-pw"), api.token("demo_partner", "demo-partner-pw")


def test_the_api_applies_the_definitions_rights(demo):
    cfg, api = demo
    public, partner = users(api)
    find = {"query_type": "find", "query": {"catalog": "DEMO_alerts", "filter": {},
                                            "projection": {"_id": 0, "candid": 1, "candidate.program": 1}}}
    assert {a["candidate"]["program"] for a in api.data(find, public)} == {1}
    assert len(api.data(find, public)) == 12 and len(api.data(find, partner)) == 24
    aux = {"query_type": "find", "query": {"catalog": "DEMO_alerts_aux", "filter": {}}}
    seen = [p["program"] for x in api.data(aux, public) for p in x.get("prv_candidates") or []]
    assert seen and set(seen) == {1}


def test_cutouts_are_read_from_the_definitions_fields(demo):
    cfg, api = demo
    d = db.get_db(cfg)
    mine = d.DEMO_alerts.find_one({"candidate.program": 1})
    theirs = d.DEMO_alerts.find_one({"candidate.program": 2})
    public, partner = users(api)
    r = api.get(f"/api/cutouts/demo/{mine['candid']}/science/fits", token=public)
    assert r.status_code == 200 and r.content == gzip.decompress(mine["stamp_science"])
    r = api.get(f"/api/cutouts/demo/{mine['candid']}/difference/png", token=public)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = api.get(f"/api/cutouts/demo/{theirs['candid']}/science/png", token=public)
    assert r.status_code == 404, r.text  # a partnership alert: not there for a public user
    r = api.get(f"/api/cutouts/demo/{theirs['candid']}/science/png", token=partner)
    assert r.status_code == 200


def test_the_definition_is_the_one_named_in_config(demo):
    cfg, _ = demo
    survey = get_survey("demo", cfg)
    assert type(survey).__module__ == "tests.surveys.demo_survey"
    assert survey.alerts_collection == "DEMO_alerts" and survey.upstream.window_days == 10
    broken = {**cfg, "surveys": {**cfg["surveys"], "demo": {**cfg["surveys"]["demo"], "definition": "tests.nope:X"}}}
    with pytest.raises(KeyError, match="cannot be loaded"):
        get_survey("demo", broken)
