"""penquins 2.4.2, unmodified, end to end against the server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from penquins import Kowalski, __version__

from tests.api import realdata


@pytest.fixture(scope="module")
def archive(api, config):
    info = realdata.load(config)
    api.add_user("pq", "pw")
    return info


@pytest.fixture(scope="module")
def k(api, archive):
    u = urlsplit(api.url)
    client = Kowalski(username="pq", password="pw", protocol="http", host=u.hostname, port=u.port, timeout=30)
    yield client
    client.close()


def test_version():
    assert __version__ == "2.4.2"


def test_construct_and_ping(k):
    assert k.ping()
    cats = k.instances["default"]["catalogs"]
    assert "ZTF_alerts" in cats and "ZTF_alerts_aux" in cats and "users" not in cats


def test_token_construction(api, archive):
    u = urlsplit(api.url)
    with Kowalski(token=api.token("pq", "pw"), protocol="http", host=u.hostname, port=u.port, timeout=30) as k2:
        assert k2.ping()


def test_bad_credentials_raise(api, archive):
    u = urlsplit(api.url)
    # penquins 2.4.2 turns the API's 401 into this ValueError (penquins.py add_instance/authenticate);
    # a connection error, a 500 or a changed message would not match
    with pytest.raises(ValueError, match=r"^Failed to add instance default: Authentication failed for default: "
                                         r"\{'status': 'error', 'message': 'Unauthorized'\}$"):
        Kowalski(username="pq", password="wrong", protocol="http", host=u.hostname, port=u.port, timeout=10)
    r = api.post("/api/auth", {"username": "pq", "password": "wrong"})
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}


def test_queries(k, archive):
    cone = {"query_type": "cone_search", "query": {"object_coordinates": {
        "cone_search_radius": 2, "cone_search_unit": "arcsec", "radec": {"ZTF19abzrhgq": [realdata.RA, realdata.DEC]}},
        "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "objectId": 1}}}}, "kwargs": {"filter_first": False}}
    r = k.query(query=cone)
    assert r["default"]["status"] == "success"
    assert r["default"]["data"]["ZTF_alerts"]["ZTF19abzrhgq"] == [{"objectId": "ZTF19abzrhgq"}]

    find = {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"objectId": {"$in": ["ZTF19abzrhgq", "ZTF17aadcvhq"]}},
                                            "projection": {"_id": 0, "objectId": 1}}, "kwargs": {"filter_first": False}}
    r = k.query(query=find)
    assert {d["objectId"] for d in r["default"]["data"]} == {"ZTF19abzrhgq", "ZTF17aadcvhq"}

    near = {"query_type": "near", "query": {"max_distance": 30, "distance_units": "arcsec",
                                            "radec": {"object1": [realdata.RA, realdata.DEC]},
                                            "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1}}}},
            "kwargs": {"limit": 1}}
    r = k.query(query=near)
    assert r["default"]["data"]["ZTF_alerts"]["object1"] == [{"candid": 1127107111615015007}]

    r = k.query(query={"query_type": "count_documents", "query": {"catalog": "ZTF_alerts", "filter": {"objectId": "ZTF17aadcvhq"}}})
    assert r["default"]["data"] == 1  # the programid-2 copy is invisible to this user
    r = k.query(query={"query_type": "estimated_document_count", "query": {"catalog": "ZTF_alerts"}})
    assert r["default"]["data"] == archive["n_public"]
    r = k.query(query={"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [
        {"$match": {"candid": 1127561445515015011}}, {"$project": {"_id": 0, "candid": 1}}]}, "kwargs": {"max_time_ms": 2000}})
    assert r["default"]["data"] == [{"candid": 1127561445515015011}]
    r = k.query(query={"query_type": "find_one", "query": {"catalog": "ZTF_alerts_aux", "filter": {"_id": "ZTF17aadcvhq"}}})
    assert {p["programid"] for p in r["default"]["data"]["prv_candidates"]} == {1}
    r = k.query(query={"query_type": "info", "query": {"command": "catalog_names"}})
    assert "ZTF_alerts" in r["default"]["data"]
    r = k.query(query={"query_type": "info", "query": {"command": "index_info", "catalog": "ZTF_alerts"}})
    assert "candid_unique" in r["default"]["data"]
    # errors come back as the envelope
    r = k.query(query={"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"$where": "1"}}})
    assert r["default"]["status"] == "error" and "$where" in r["default"]["message"]


def test_batch_queries_over_threads(k, archive):
    queries = [{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candid": c},
                                                "projection": {"_id": 0, "candid": 1}}}
               for c in (1127107111615015007, 1127561445515015011, 2475433850015010009, 2475433850015015000)] * 5
    r = k.query(queries=queries, use_batch_query=True, max_n_threads=4)
    results = r["default"]
    assert len(results) == 20 and all(x["status"] == "success" for x in results)
    assert sorted(x["data"][0]["candid"] for x in results) == sorted(q["query"]["filter"]["candid"] for q in queries)


def test_api_passthrough(k, archive):
    r = k.api("get", "/api/classifications/ztf/2475433850015010009")
    assert r["status"] == "error"
    r = k.api("put", "/api/classifications/ztf", data={"2475433850015010009": {"human_labels": {"Ia": 0.5}}})
    assert r["status"] == "success"
    r = k.api("get", "/api/classifications/ztf/2475433850015010009")
    assert r["data"]["human_labels"] == {"Ia": 0.5}
