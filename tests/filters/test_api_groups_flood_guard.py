"""Beyond Kowalski: group members manage their group's filters; the activation flood guard.

Default configuration (filters.flood_guard_share 0.05 of the most recent 1000 alerts) on the
24 real alerts of 20231012.
"""

from __future__ import annotations

import pytest

from broker.pipeline import ingest_files
from tests.api.conftest import Api, start_server, stop_server
from tests.conftest import shared_data

SELECTIVE = [{"$match": {"candidate.drb": {"$gt": 2}}}, {"$project": {"_id": 0, "candid": 1}}]
LOOSE = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1}}]


@pytest.fixture(scope="module")
def api(config):
    totals = ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))
    assert totals["inserted"] == 24, totals
    proc, url, _ = start_server(config, processes=1)
    client = Api(url, config)
    client.add_user("alice", "alice-pw")
    client.add_user("bob", "bob-pw")
    r = client.put("/api/users/alice/groups", {"groups": [5, 7]}, token=client.admin_token)
    assert r.status_code == 200, r.text
    yield client
    client.session.close()
    stop_server(proc)


@pytest.fixture(autouse=True)
def no_filters(api, config):
    """Each test starts with no filter saved (the module's API and alerts are shared): what one test
    saved cannot change what another lists, counts or is refused."""
    from kowalski import db
    db.filters_collection(config).delete_many({})


def flt(filter_id, group_id, pipeline=SELECTIVE, permissions=(1,), **kw):
    return {"filter_id": filter_id, "group_id": group_id, "catalog": "ZTF_alerts", "permissions": list(permissions),
            "pipeline": pipeline, **kw}


def test_groups_route(api):
    r = api.get("/api/users/alice/groups", token=api.admin_token)
    assert r.status_code == 200 and r.json()["data"] == [5, 7]
    alice = api.token("alice", "alice-pw")
    assert api.put("/api/users/bob/groups", {"groups": [5]}, token=alice).status_code == 403
    # a member reads their own groups (the filter editor offers them), no one else's
    r = api.get("/api/users/alice/groups", token=alice)
    assert r.status_code == 200 and r.json()["data"] == [5, 7], r.text
    assert api.get("/api/users/bob/groups", token=alice).status_code == 403
    for bad in ({"groups": "5"}, {"groups": [0]}, {"groups": [True]}, {"group": [5]}):
        r = api.put("/api/users/bob/groups", bad, token=api.admin_token)
        assert r.status_code == 400 and "groups" in r.json()["message"]
    r = api.put("/api/users/nobody/groups", {"groups": [1]}, token=api.admin_token)
    assert r.status_code == 400 and r.json()["message"] == "user nobody not found"


def test_members_manage_their_groups_filters(api):
    alice, bob = api.token("alice", "alice-pw"), api.token("bob", "bob-pw")
    r = api.post("/api/filters", flt(1, 5), token=alice)
    assert r.status_code == 200, r.text
    r = api.post("/api/filters", flt(2, 6), token=alice)
    assert r.status_code == 403 and "not a member of group 6" in r.json()["message"]
    assert api.post("/api/filters", flt(2, 6), token=api.admin_token).status_code == 200
    # alice sees and changes group 5's filter, not group 6's; bob (no groups) neither
    assert api.get("/api/filters/1", token=alice).status_code == 200
    assert api.get("/api/filters/2", token=alice).status_code == 403
    assert api.get("/api/filters/1", token=bob).status_code == 403
    assert api.request("PATCH", "/api/filters", json={"filter_id": 1, "active": False}, token=alice).status_code == 200
    assert api.request("PATCH", "/api/filters", json={"filter_id": 2, "active": False}, token=alice).status_code == 403
    assert api.post("/api/filters/2/test", {"object_ids": ["ZTF17aadcvhq"]}, token=alice).status_code == 403
    assert api.delete("/api/filters/2", token=bob).status_code == 403
    r = api.get("/api/filters", token=alice)
    assert r.status_code == 200 and [f["filter_id"] for f in r.json()["data"]] == [1]
    assert {f["filter_id"] for f in api.get("/api/filters", token=api.admin_token).json()["data"]} >= {1, 2}
    # a filter id taken by another group is refused, not moved
    r = api.post("/api/filters", flt(2, 5), token=alice)
    assert r.status_code == 400 and "already exists in group 6" in r.json()["message"]
    assert api.delete("/api/filters/1", token=alice).status_code == 200


def test_flood_guard_refuses_activation(api):
    t = api.admin_token
    r = api.post("/api/filters", flt(30, 7, LOOSE), token=t)
    assert r.status_code == 400, r.text
    msg = r.json()["message"]
    assert msg.startswith("activation refused by the flood guard: filter id 30 version ")
    assert "passes 22 of the 24 most recent ZTF_alerts alerts (91.7%)" in msg and "5.0%" in msg
    assert api.get("/api/filters/30", token=t).status_code == 400  # nothing saved

    # saved inactive, it cannot be switched on; a selective version can
    r = api.post("/api/filters", flt(30, 7, LOOSE, active=False), token=t)
    assert r.status_code == 200, r.text
    loose_fid = r.json()["data"]["fid"]
    r = api.request("PATCH", "/api/filters", json={"filter_id": 30, "active": True}, token=t)
    assert r.status_code == 400 and "flood guard" in r.json()["message"]
    assert api.get("/api/filters/30", token=t).json()["data"]["active"] is False
    r = api.post("/api/filters", flt(30, 7, SELECTIVE), token=t)  # new version of an inactive filter
    assert r.status_code == 200, r.text
    r = api.request("PATCH", "/api/filters", json={"filter_id": 30, "active": True}, token=t)
    assert r.status_code == 200, r.text
    # going back to the loose version of an active filter is refused too
    r = api.request("PATCH", "/api/filters", json={"filter_id": 30, "active_fid": loose_fid}, token=t)
    assert r.status_code == 400 and "flood guard" in r.json()["message"]
    # and so is a new loose version of an active filter
    r = api.post("/api/filters", flt(30, 7, LOOSE), token=t)
    assert r.status_code == 400 and "flood guard" in r.json()["message"]
    assert len(api.get("/api/filters/30", token=t).json()["data"]["fv"]) == 2


def test_members_see_only_their_program_ids(api, config):
    """A member cannot give a filter program ids they may not see, nor see them through /test."""
    from kowalski import db

    alerts = db.get_db(config)["ZTF_alerts"]
    copy = alerts.find_one({"candid": 2475433850015010009})
    copy.pop("_id")
    copy["candid"] += 7
    copy["candidate"] = {**copy["candidate"], "programid": 2, "candid": copy["candid"]}
    alerts.insert_one(copy)  # a programid-2 alert (alice sees programid 1 only)
    try:
        _members_see_only_their_program_ids(api, copy)
    finally:  # the other tests count the 24 real alerts
        alerts.delete_one({"candid": copy["candid"]})


def _members_see_only_their_program_ids(api, copy):
    alice = api.token("alice", "alice-pw")
    r = api.post("/api/filters", flt(40, 5, permissions=(1, 2), active=False), token=alice)
    assert r.status_code == 403 and "permissions [2] are program ids of ZTF_alerts you may not see" in r.json()["message"]
    everything = [{"$match": {}}, {"$project": {"_id": 0, "candid": 1}}]
    r = api.post("/api/filters", flt(40, 5, everything, permissions=(1, 2), active=False), token=api.admin_token)
    assert r.status_code == 200, r.text
    day = {"start_date": 2460229.9338542, "end_date": 2460230.9338542}
    admin = api.post("/api/filters/40/test", day, token=api.admin_token).json()
    mine = api.post("/api/filters/40/test", day, token=alice).json()
    assert admin["summary"]["passed"] == 25 and copy["candid"] in {d["candid"] for d in admin["data"]}
    assert mine["summary"]["passed"] == 24 and copy["candid"] not in {d["candid"] for d in mine["data"]}
