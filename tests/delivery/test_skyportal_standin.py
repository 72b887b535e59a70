"""The SkyPortal stand-in itself: it refuses what SkyPortal refuses (tests/skyportal_standin.py says
where in SkyPortal's source each check comes from) and accepts what SkyPortal accepts.

Each bad request is one mistake away from a good one, so a check that stopped working shows up as a
200 here rather than as a delivery test that passes against a too-lenient stand-in.
"""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from tests.skyportal_standin import SkyPortalStandIn

GROUPS = {1: {"name": "Group One", "filters": [{"id": 1, "name": "loose"}]},
          2: {"name": "Group Two", "filters": [{"id": 6, "name": "saver"}]}}
PASSED_AT = "2026-01-01T00:00:00.000000"


@pytest.fixture
def sp():
    s = SkyPortalStandIn(token="tok", groups=GROUPS).start()
    yield s
    s.stop()


def call(sp, method, path, body=None, token="tok", **kw):
    r = requests.request(method, sp.url + path, json=body, headers={"Authorization": f"token {token}"},
                         timeout=10, **kw)
    return r.status_code, (r.json() if r.content else None)


def candidate(**over):
    body = {"id": "ZTF20aaaaaaa", "ra": 10.0, "dec": -5.0, "score": 0.9, "filter_ids": [1],
            "passing_alert_id": 123, "passed_at": PASSED_AT, "origin": "Kowalski"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


def png(w, h, fmt="PNG") -> str:
    buf = io.BytesIO()
    Image.new("L", (w, h), 128).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def refused(sp, method, path, body, fragment):
    n = len(sp.invalid)
    status, out = call(sp, method, path, body)
    assert status == 400 and out["status"] == "error" and fragment in out["message"], (status, out)
    assert len(sp.invalid) == n + 1 and fragment in sp.invalid[-1]["reason"]


def test_candidate_checks(sp):
    # a new object: unknown keys are refused by Obj's marshmallow schema (a misspelling included)
    refused(sp, "POST", "/api/candidates", candidate(passing_alert_id=..., passing_alert_idx=1), "passing_alert_idx")
    refused(sp, "POST", "/api/candidates", candidate(ra=...), "RA must not be null")
    refused(sp, "POST", "/api/candidates", candidate(passed_at=...), "passed_at")
    refused(sp, "POST", "/api/candidates", candidate(passed_at="not a date"), "Invalid passedAt value")
    refused(sp, "POST", "/api/candidates", candidate(filter_ids=[]), "filter_ids")
    refused(sp, "POST", "/api/candidates", candidate(filter_ids=[99]), "At least one valid filter ID")
    refused(sp, "POST", "/api/candidates", candidate(score="high"), "score")
    assert sp.candidates == {}
    assert call(sp, "POST", "/api/candidates", candidate()) == (200, {"status": "success", "data": {"ids": [1]}})
    assert sp.candidates == {"ZTF20aaaaaaa": [(1, 123)]}
    # an existing object: SkyPortal loads nothing but the candidate keys, so an unknown key passes
    assert call(sp, "POST", "/api/candidates", candidate(ra=..., dec=..., extra=1))[0] == 200
    assert call(sp, "HEAD", "/api/candidates/ZTF20aaaaaaa")[0] == 200
    assert call(sp, "HEAD", "/api/candidates/ZTF20nothere")[0] == 404


def test_thumbnail_checks(sp):
    assert call(sp, "POST", "/api/candidates", candidate())[0] == 200
    good = {"obj_id": "ZTF20aaaaaaa", "data": png(63, 63), "ttype": "new"}
    # each side between 16 and 500 px (a tuple comparison let 300x10 or 100x600 through)
    for w, h in [(300, 10), (10, 300), (100, 600), (600, 100), (501, 500), (15, 16)]:
        refused(sp, "POST", "/api/thumbnail", {**good, "data": png(w, h)}, "Invalid thumbnail size")
    refused(sp, "POST", "/api/thumbnail", {**good, "data": png(63, 63, "JPEG")}, "Only PNG are supported")
    refused(sp, "POST", "/api/thumbnail", {**good, "data": "bm90IGFuIGltYWdl"}, "Invalid file type")
    refused(sp, "POST", "/api/thumbnail", {**good, "type": "new"}, "type")  # extra="forbid"
    refused(sp, "POST", "/api/thumbnail", {**good, "ttype": "diff"}, "Invalid ttype")
    refused(sp, "POST", "/api/thumbnail", {**good, "obj_id": "ZTF20nothere"}, "Invalid obj_id")
    del good["ttype"]
    refused(sp, "POST", "/api/thumbnail", good, "ttype")
    assert sp.thumbnails == []
    for w, h in [(16, 16), (500, 500), (16, 500), (300, 50)]:
        assert call(sp, "POST", "/api/thumbnail", {**good, "ttype": "ref", "data": png(w, h)})[0] == 200, (w, h)
    assert len(sp.thumbnails) == 4


def test_photometry_checks(sp):
    good = {"obj_id": "ZTF20aaaaaaa", "stream_ids": [1], "instrument_id": 7, "mjd": [60000.1, 60001.2],
            "flux": [12.5, None], "fluxerr": [1.5, 2.0], "zp": [23.9, 23.9], "magsys": ["ab", "ab"],
            "filter": ["ztfg", "ztfr"], "ra": [10.0, None], "dec": [-5.0, None], "origin": ["", ""]}
    refused(sp, "PUT", "/api/photometry", {**good, "fluxerr": [1.5]}, "fluxerr has 1 values")
    refused(sp, "PUT", "/api/photometry", {**good, "mjd": [60000.1, 60001.2, 60002.0]}, "another array has 3")
    refused(sp, "PUT", "/api/photometry", {**good, "fluxerr": [1.5, 0]}, "fluxerr")       # must be > 0
    refused(sp, "PUT", "/api/photometry", {**good, "fluxerr": [1.5, None]}, "fluxerr")
    refused(sp, "PUT", "/api/photometry", {**good, "filter": ["ztfg", "ztf_r"]}, "filter")
    refused(sp, "PUT", "/api/photometry", {**good, "magsys": ["ab", "AB"]}, "magsys")
    refused(sp, "PUT", "/api/photometry", {**good, "fluxerror": [1, 1]}, "fluxerror")   # unknown key
    refused(sp, "PUT", "/api/photometry", {k: v for k, v in good.items() if k != "zp"}, "zp")
    assert sp.photometry == {}
    status, out = call(sp, "PUT", "/api/photometry", good)
    assert status == 200 and out["data"]["new"] == 2 and len(sp.photometry) == 2
    assert call(sp, "PUT", "/api/photometry", good)[1]["data"]["new"] == 0  # same points again


def test_annotation_checks(sp):
    path = "/api/sources/ZTF20aaaaaaa/annotations"
    refused(sp, "POST", path, {"origin": ":x", "data": {"a": 1}}, "origin")  # must match ^\w+
    refused(sp, "POST", path, {"origin": "one:loose", "data": [1]}, "data")
    refused(sp, "POST", path, {"data": {"a": 1}}, "origin")
    # extra="ignore": the obj_id Kowalski sends is accepted
    status, out = call(sp, "POST", path, {"obj_id": "ZTF20aaaaaaa", "origin": "one:loose", "data": {"a": 1}})
    assert status == 200 and out["data"] == {"annotation_id": 1}
    refused(sp, "POST", path, {"origin": "one:loose", "data": {"a": 2}}, "already exists")
    assert call(sp, "PUT", path + "/1", {"data": {"a": 2}, "author_id": 1, "obj_id": "ZTF20aaaaaaa"})[0] == 200
    assert sp.annotations[0]["data"] == {"a": 2}
    refused(sp, "PUT", path + "/7", {"data": {"a": 3}}, "no annotation 7")


def test_source_checks(sp):
    body = {"id": "ZTF20aaaaaaa", "group_ids": [2], "origin": "Kowalski"}
    refused(sp, "POST", "/api/sources", body, "RA/Declination must not be null")
    refused(sp, "POST", "/api/sources", {**body, "id": "ZTF 20"}, "Only letters")
    refused(sp, "POST", "/api/sources", {**body, "ra": 1.0, "dec": 2.0, "group_ids": [42]}, "Cannot find group_id 42")
    # on a new object, ignore_if_in_group_ids is an unknown field of Obj's schema
    refused(sp, "POST", "/api/sources", {**body, "ra": 1.0, "dec": 2.0, "ignore_if_in_group_ids": {"2": [3]}},
            "ignore_if_in_group_ids")
    assert call(sp, "POST", "/api/candidates", candidate())[0] == 200
    # its keys must be among group_ids
    refused(sp, "POST", "/api/sources", {**body, "ignore_if_in_group_ids": {"1": [3]}}, "ignore_if_in_group_ids")
    assert call(sp, "POST", "/api/sources", {**body, "ignore_if_in_group_ids": {"2": [3]}})[0] == 200
    assert sp.sources == {"ZTF20aaaaaaa": {2}}
    assert call(sp, "GET", "/api/sources/ZTF20aaaaaaa/groups")[1]["data"] == [{"id": 2}]


def test_followup_checks(sp):
    good = {"obj_id": "ZTF20aaaaaaa", "allocation_id": 9, "payload": {"priority": 5},
            "ignore_source_group_ids": [3]}
    refused(sp, "POST", "/api/followup_request", {**good, "priority": 5}, "priority")  # unknown key
    refused(sp, "POST", "/api/followup_request", {k: v for k, v in good.items() if k != "allocation_id"},
            "allocation_id")
    assert call(sp, "POST", "/api/followup_request", good) == (200, {"status": "success", "data": {"id": 1}})
    refused(sp, "PUT", "/api/followup_request/1", {"payload": {"priority": 4}}, "obj_id")
    assert call(sp, "PUT", "/api/followup_request/1", {**good, "payload": {"priority": 4}})[0] == 200
    assert sp.followups[0]["payload"] == {"priority": 4}
    refused(sp, "PUT", "/api/followup_request/5", good, "Missing FollowUpRequest with id 5")


def test_token_content_type_and_routes(sp):
    n = len(sp.invalid)
    assert call(sp, "GET", "/api/streams", token="wrong")[0] == 400
    r = requests.post(sp.url + "/api/candidates", data="id=x", timeout=10, headers={
        "Authorization": "token tok", "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "application/json" in r.json()["message"]
    assert call(sp, "POST", "/api/candidate", candidate())[0] == 400  # no such endpoint
    assert call(sp, "DELETE", "/api/candidates", candidate())[0] == 400
    assert len(sp.invalid) == n + 4 and sp.requests == []
    assert call(sp, "GET", "/api/groups/42") == (400, {"status": "error", "message": "Cannot find group with id 42"})
    assert call(sp, "GET", "/api/groups/2")[1]["data"]["name"] == "Group Two"
