"""/api/filters, Kowalski-compatible (reference §1.5 and §10), on the real 20231012 alerts.

A real API server process on this module's private database, filled by the broker's own
ingestion (``ingest_files``) with the 24 real alerts of 20231012.  The flood guard is set off here
(``filters.flood_guard_share: 1``) because Kowalski's test sequence activates a version passing
22 of 24 alerts; tests/filters/test_api_groups_flood_guard.py covers it with the default share.
"""

from __future__ import annotations

import json

import pytest

from broker.pipeline import ingest_files
from tests.api.conftest import Api, start_server, stop_server
from tests.conftest import shared_data

TEST_FILTER = {
    "group_id": 1, "filter_id": 1, "catalog": "ZTF_alerts", "permissions": [1, 2],
    "pipeline": [
        {"$match": {"candidate.drb": {"$gt": 0.9999}, "cross_matches.CLU_20190625.0": {"$exists": False}}},
        {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}},
    ],
}
MATCH_STR = ('[{"$match": {"candidate.drb": {"$gt": 0.9999}, "cross_matches.CLU_20190625.0": {"$exists": false}}}]')


@pytest.fixture(scope="module")
def api(config):
    totals = ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))
    assert totals["inserted"] == 24, totals
    proc, url, _ = start_server(config, processes=1, extra_env={"KOWALSKI_FILTERS__FLOOD_GUARD_SHARE": "1"})
    client = Api(url, config)
    yield client
    client.session.close()
    stop_server(proc)


def post(api, body, token=None):
    return api.post("/api/filters", body, token=token or api.admin_token)


def patch(api, body, token=None):
    return api.request("PATCH", "/api/filters", json=body, token=token or api.admin_token)


def test_filter_lifecycle(api):
    r = post(api, TEST_FILTER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["message"] == "pipeline test for filter id 1 successful\nsaved new filter version: " + body["data"]["fid"]
    fid1 = body["data"]["fid"]
    assert len(fid1) == 6 and fid1.isalnum() and fid1 == fid1.lower()
    assert body["data"]["pipeline"] == json.dumps(TEST_FILTER["pipeline"])
    assert "$date" in body["data"]["created_at"]

    r = api.get("/api/filters/1", token=api.admin_token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert r.json()["message"] == "Retrieved filter id 1"
    assert data["active"] is True and data["active_fid"] == fid1 and "$oid" in data["_id"]
    assert [v["fid"] for v in data["fv"]] == [fid1] and isinstance(data["fv"][0]["pipeline"], str)
    assert data["autosave"] is False and data["auto_followup"] == {} and data["update_annotations"] is False

    # a second version becomes the active one
    r = post(api, TEST_FILTER)
    assert r.status_code == 200, r.text
    fid2 = r.json()["data"]["fid"]
    assert fid2 != fid1
    assert api.get("/api/filters/1", token=api.admin_token).json()["data"]["active_fid"] == fid2

    r = patch(api, {"filter_id": 1, "active_fid": fid1})
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Updated filter id 1" and r.json()["data"]["active_fid"] == fid1

    for change in ({"autosave": True}, {"update_annotations": True}, {"active": False}):
        r = patch(api, {"filter_id": 1, **change})
        assert r.status_code == 200, r.text
        (k, v), = change.items()
        assert r.json()["data"][k] == v

    autosave = {"active": True, "comment": "test autosave", "pipeline": MATCH_STR, "ignore_group_ids": [1, 2, 3]}
    r = patch(api, {"filter_id": 1, "autosave": autosave})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["autosave"] == autosave

    auto_followup = {"active": True, "allocation_id": 1, "comment": "test auto_followup", "priority_order": "desc",
                     "payload": {"observation_type": "IFU"}, "pipeline": json.loads(MATCH_STR)}
    r = patch(api, {"filter_id": 1, "auto_followup": auto_followup})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["auto_followup"] == {**auto_followup, "pipeline": MATCH_STR}

    r = patch(api, {"filter_id": 1, "active_fid": "somerandomfid"})
    assert r.status_code == 400 and "filter version fid not in filter" in r.json()["message"]

    r = api.delete("/api/filters/1", token=api.admin_token)
    assert r.status_code == 200 and r.json()["message"] == "Removed filter id 1"
    for method in ("GET", "DELETE"):
        r = api.request(method, "/api/filters/1", token=api.admin_token)
        assert r.status_code == 400 and r.json()["message"] == "Filter id 1 not found"
    r = patch(api, {"filter_id": 1, "active": True})
    assert r.status_code == 400 and r.json()["message"] == "Filter id 1 not found"


@pytest.mark.parametrize("stage,message", [
    ({"$matc": {"candidate.drb": {"$gt": 0.9}}}, "unsupported stage $matc"),
    ({"$lookup": {"from": "ZTF_alerts_aux", "localField": "objectId", "foreignField": "_id", "as": "aux"}},
     "pipeline uses forbidden stages"),
    ({"$match": {"candidate.drb": {"$foo": 1}}}, "unsupported operator $foo"),
    ({"$project": {"d": {"$dateToString": {"date": "$x"}}}}, "unsupported operator $dateToString"),
])
def test_refused_pipelines(api, stage, message):
    r = post(api, {**TEST_FILTER, "filter_id": 2, "pipeline": [stage]})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert api.get("/api/filters/2", token=api.admin_token).status_code == 400  # nothing saved


@pytest.mark.parametrize("body,message", [
    ({"pipeline": []}, "at least one stage"),
    ({"filter_id": 0}, "filter_id must be an integer >= 1"),
    ({"group_id": "one"}, "group_id must be an integer >= 1"),
    ({"catalog": "NOPE_alerts"}, "unknown catalog 'NOPE_alerts'"),
    ({"permissions": [1, "2"]}, "permissions must be a list of integer program ids"),
    ({"colour": "red"}, "unknown keys ['colour']"),
    ({"auto_followup": {"active": True, "pipeline": [{"$match": {}}]}},
     "Cannot setup auto_followup without autosave enabled"),
    ({"autosave": {"active": True, "bogus": 1}}, "Cannot test autosave pipeline: invalid keys"),
    ({"autosave": True, "auto_followup": {"active": True, "allocation_id": 1}}, "needs a pipeline"),
    ({"autosave": True, "auto_followup": {"active": True, "pipeline": [{"$match": {}}], "priority_order": "up"}},
     "priority_order must be 'asc' or 'desc'"),
    ({"pipeline": [{"$project": {"x": {"$sqrt": -1}}}]}, "failed on the latest alert"),
])
def test_bad_filters_are_refused(api, body, message):
    r = post(api, {**TEST_FILTER, "filter_id": 3, **body})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"], r.json()
    assert api.get("/api/filters/3", token=api.admin_token).status_code == 400


def test_priority_order_consistency(api):
    base = {**TEST_FILTER, "autosave": True}
    af = {"active": True, "allocation_id": 7, "priority_order": "asc", "payload": {"priority": 1},
          "pipeline": json.loads(MATCH_STR)}
    assert post(api, {**base, "filter_id": 10, "auto_followup": af}).status_code == 200
    r = post(api, {**base, "filter_id": 11, "auto_followup": {**af, "allocation_id": "7", "priority_order": "desc"}})
    assert r.status_code == 400 and "existing filters with the same allocation have priority_order" in r.json()["message"]
    assert post(api, {**base, "filter_id": 11}).status_code == 200
    r = patch(api, {"filter_id": 11, "auto_followup": {**af, "priority_order": "desc"}})
    assert r.status_code == 400
    assert r.json()["message"].startswith("Cannot update filter id 11: auto_followup, filters with the same allocation")
    r = patch(api, {"filter_id": 11, "autosave": {"active": True, "pipeline": [{"$matc": {}}]}})
    assert r.status_code == 400 and r.json()["message"].startswith("Cannot update filter id 11: autosave pipeline")


def test_filter_test_endpoint(api):
    r = post(api, {**TEST_FILTER, "filter_id": 20})
    assert r.status_code == 200, r.text
    url = "/api/filters/20/test"
    r = api.post(url, {"object_ids": ["ZTF17aadcvhq"]}, token=api.admin_token)
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "filter test successful" and r.json()["data"] == []
    looser = [{"$match": {"candidate.drb": {"$gt": 0.5}}}] + TEST_FILTER["pipeline"][1:]
    assert post(api, {**TEST_FILTER, "filter_id": 20, "pipeline": looser}).status_code == 200
    r = api.post(url, {"object_ids": ["ZTF17aadcvhq"]}, token=api.admin_token)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    out = r.json()["data"][0]
    assert out["objectId"] == "ZTF17aadcvhq" and out["annotations"]["author"] == "dd"

    r = api.post(url, {"start_date": 2460229.9338542, "end_date": 2460230.9338542}, token=api.admin_token)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 22
    s = r.json()["summary"]
    assert s["passed"] == 22 and s["alerts"] == 24 and s["errors"] == 0

    # the first version is still there: drb > 0.9999 passes nothing of that object
    fv = api.get("/api/filters/20", token=api.admin_token).json()["data"]["fv"]
    r = api.post(url, {"object_ids": ["ZTF17aadcvhq"], "filter_version": fv[0]["fid"]}, token=api.admin_token)
    assert r.status_code == 200 and r.json()["data"] == []


@pytest.mark.parametrize("body,message", [
    ({"start_date": 2460229.9338542, "end_date": 2460231.9338542},
     "start_date and end_date must be within 1 day of each other if object_ids is not provided"),
    ({"object_ids": ["ZTF17aadcvhq"], "start_date": 2460229.9338542, "end_date": 2460259.9338542,
      "max_time_ms": 3000001}, "max_time_ms must be less than 5 minutes (in ms: 300000)"),
    ({}, "At least one of object_ids, start_date, or end_date is required"),
    ({"object_ids": "ZTF17aadcvhq"}, "object_ids must be a list if provided"),
    ({"object_ids": ["x"] * 1001}, "object_ids list must have 1000 or fewer elements"),
    ({"start_date": 2460229.9338542}, "start_date and end_date must both be provided if either is provided"),
    ({"start_date": 2460229, "end_date": 2460230}, "start_date must be a float or a string"),
    ({"object_ids": ["ZTF17aadcvhq"], "filter_version": "zzzzzz"}, "Filter version zzzzzz not found"),
])
def test_filter_test_refusals(api, body, message):
    if post(api, {**TEST_FILTER, "filter_id": 21}).status_code != 200:
        pytest.fail("could not create filter 21")
    r = api.post("/api/filters/21/test", body, token=api.admin_token)
    assert r.status_code == 400, r.text
    assert r.json()["message"] == message


def test_filter_test_unknown_filter_and_dates_as_strings(api):
    r = api.post("/api/filters/999/test", {"object_ids": ["ZTF17aadcvhq"]}, token=api.admin_token)
    assert r.status_code == 400 and r.json()["message"] == "Filter id 999 not found"
    assert post(api, {**TEST_FILTER, "filter_id": 22,
                      "pipeline": [{"$match": {"candidate.drb": {"$gt": 0.5}}}]}).status_code == 200
    r = api.post("/api/filters/22/test", {"start_date": "2023-10-12T10:24:16", "end_date": "2023-10-13T10:24:16"},
                 token=api.admin_token)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 22


def test_stationary_fp_filter_on_the_packet_history(api):
    """The fp_hists "stationary" filter (§10) over the archive: /test gives each alert its object's
    stored, merged forced photometry (kept whole: ``fp_hists_cutoff: false``), points before the alert
    only. The expected alerts are derived from the archive here with the filter's rule written in
    Python, as test_engine_real_alerts does on the packets' own fp_hists."""
    pipeline = [
        {"$match": {"candidate.drb": {"$gt": 0.5}}},
        {"$addFields": {"annotations.author": "dd", "annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1, "t_now": "$candidate.jd",
                      "fp_hists": 1}},
        {"$project": {"stationary_fp": {"$cond": {
            "if": {"$eq": [{"$type": "$fp_hists"}, "missing"]}, "then": False,
            "else": {"$anyElementTrue": {"$map": {"input": "$fp_hists", "as": "cand", "in": {"$and": [
                {"$gt": [{"$abs": {"$subtract": ["$t_now", "$$cand.jd"]}}, 0.015]},
                {"$gte": ["$$cand.snr", 3]}]}}}}}}, "candid": 1}},
        {"$match": {"stationary_fp": True}},
    ]
    r = post(api, {**TEST_FILTER, "filter_id": 23, "pipeline": pipeline})
    assert r.status_code == 200, r.text
    r = api.post("/api/filters/23/test", {"start_date": 2460229.9338542, "end_date": 2460230.9338542},
                 token=api.admin_token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert all(d["stationary_fp"] is True for d in data)
    from kowalski.filters.inputs import filter_input
    from kowalski import db
    d = db.get_db(api.config)
    expected = []
    for a in d["ZTF_alerts"].find({"candidate.jd": {"$gte": 2460229.9338542, "$lte": 2460230.9338542}}):
        inp = filter_input(a, d["ZTF_alerts_aux"].find_one({"_id": a["objectId"]}), TEST_FILTER["permissions"],
                           past_only=True)
        if inp is not None and a["candidate"]["drb"] > 0.5 and any(
                abs(a["candidate"]["jd"] - fp["jd"]) > 0.015 and fp.get("snr", float("-inf")) >= 3
                for fp in inp.get("fp_hists") or []):
            expected.append(a["candid"])
    assert 0 < len(expected) < d["ZTF_alerts"].count_documents({})  # the filter selects: neither none nor all
    assert sorted(x["candid"] for x in data) == sorted(expected)


def test_bad_requests(api):
    r = api.request("PATCH", "/api/filters", data=b"{not json", token=api.admin_token)
    assert r.status_code == 400 and r.json()["message"].startswith("malformed JSON body")
    r = patch(api, {"filter_id": 1, "colour": "red"})
    assert r.status_code == 400 and "unknown keys" in r.json()["message"]
    r = api.get("/api/filters/abc", token=api.admin_token)
    assert r.status_code == 400 and "filter id must be an integer" in r.json()["message"]
    r = api.get("/api/filters/1")
    assert r.status_code == 401
