"""GET /api/filters pages as JupyterHub's API does (offset, limit with a maximum, _pagination)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kowalski import db
from tests.api.conftest import Api, start_server, stop_server

N = 7


@pytest.fixture(scope="module")
def api(config):
    now = dt.datetime(2026, 1, 1)
    db.filters_collection(config).insert_many([
        {"filter_id": i, "group_id": 1, "catalog": "ZTF_alerts", "permissions": [1], "active": False,
         "active_fid": "v00001", "fv": [{"fid": "v00001", "pipeline": json.dumps([{"$match": {}}]), "created_at": now}]}
        for i in range(1, N + 1)])
    proc, url, _ = start_server(config, processes=1, extra_env={"KOWALSKI_API__PAGE_MAX_LIMIT": "3"})
    client = Api(url, config)
    yield client
    client.session.close()
    stop_server(proc)


def test_pages_walk_every_filter_once_in_order(api):
    seen, url, pages = [], "/api/filters?limit=100", 0  # asks past the maximum: capped at 3
    while url:
        body = api.get(url, token=api.admin_token).json()
        assert body["status"] == "success", body
        page = body["_pagination"]
        assert page["limit"] == 3 and page["total"] == N and len(body["data"]) <= 3
        seen += [f["filter_id"] for f in body["data"]]
        url = page["next"] and page["next"]["url"] + ""
        pages += 1
    assert seen == list(range(1, N + 1)) and pages == 3


def test_offset_past_the_end_and_bad_arguments(api):
    body = api.get("/api/filters?offset=50", token=api.admin_token).json()
    assert body["data"] == [] and body["_pagination"]["next"] is None
    for q, msg in (("offset=-1", "offset must be >= 0"), ("limit=0", "limit must be >= 1"),
                   ("limit=abc", "limit must be an integer")):
        r = api.get(f"/api/filters?{q}", token=api.admin_token)
        assert r.status_code == 400 and msg in r.json()["message"], r.text
