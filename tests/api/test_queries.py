"""POST /api/queries on a small synthetic archive: every query type, kwargs honoured, data shapes."""

from __future__ import annotations

import pytest

from tests.api import synthetic

CONE = {"query_type": "cone_search", "query": {
    "object_coordinates": {"cone_search_radius": 2, "cone_search_unit": "arcsec",
                           "radec": {"object1": [synthetic.RA0, synthetic.DEC0]}},
    "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1, "objectId": 1}}}},
    "kwargs": {"filter_first": False}}


@pytest.fixture(scope="module")
def data(api, config):
    return synthetic.load(config)


def q(qt, **query):
    kwargs = query.pop("kwargs", None)
    body = {"query_type": qt, "query": query}
    if kwargs is not None:
        body["kwargs"] = kwargs
    return body


def test_find_with_kwargs(api, data):
    docs = api.data(q("find", catalog="ZTF_alerts", filter={}, projection={"_id": 0, "candid": 1},
                      kwargs={"sort": [["candid", -1]], "limit": 2, "skip": 1, "save": False}))
    assert docs == [{"candid": 2001}, {"candid": 1003}]
    docs = api.data(q("find", catalog="ZTF_alerts", filter={"candid": {"$lt": 0}}, projection={"_id": 0, "candid": 1},
                      kwargs={"limit": 1}))
    assert docs == []
    docs = api.data(q("find", catalog="ZTF_alerts", filter={}, projection={"_id": 0, "candid": 1},
                      kwargs={"sort": {"candidate.jd": 1}, "limit": 1}))
    assert docs == [{"candid": 1001}]
    # filters and projections given as strings, as Kowalski allowed
    docs = api.data(q("find", catalog="ZTF_alerts", filter="{'candid': 1001}", projection='{"_id": 0, "objectId": 1}'))
    assert docs == [{"objectId": "ZTFpub1"}]


def test_find_one_honours_projection_sort_skip(api, data):
    doc = api.data(q("find_one", catalog="ZTF_alerts", filter={}, projection={"_id": 0, "candid": 1},
                     kwargs={"sort": [["candid", 1]], "skip": 1}))
    assert doc == {"candid": 1002}
    assert api.data(q("find_one", catalog="ZTF_alerts", filter={"candid": -5})) is None
    full = api.data(q("find_one", catalog="ZTF_alerts", filter={"candid": 1001}, kwargs={"save": False}))
    assert full["objectId"] == "ZTFpub1" and "_id" in full


def test_counts(api, data):
    assert api.data(q("count_documents", catalog="ZTF_alerts", filter={"candid": {"$lt": 0}})) == 0
    assert api.data(q("count_documents", catalog="ZTF_alerts", filter={"objectId": "ZTFpub1"})) == 3
    # limit and skip are honoured (Kowalski ignored them)
    assert api.data(q("count_documents", catalog="ZTF_alerts", filter={}, kwargs={"limit": 2})) == 2
    assert api.data(q("count_documents", catalog="ZTF_alerts", filter={}, kwargs={"skip": 4})) == 1
    assert api.data(q("estimated_document_count", catalog="ZTF_alerts")) == 5


def test_aggregate(api, data):
    res = api.data(q("aggregate", catalog="ZTF_alerts", pipeline=[
        {"$match": {"candid": 1002}}, {"$project": {"_id": 0, "candid": 1}}], kwargs={"max_time_ms": 2000}))
    assert res == [{"candid": 1002}]
    res = api.data(q("aggregate", catalog="ZTF_alerts", pipeline=[
        {"$group": {"_id": "$objectId", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]))
    assert res == [{"_id": "ZTFfar1", "n": 1}, {"_id": "ZTFpriv1", "n": 1}, {"_id": "ZTFpub1", "n": 3}]


def test_info(api, data):
    names = api.data(q("info", command="catalog_names"))
    assert names == sorted(names)[::-1]
    assert {"ZTF_alerts", "ZTF_alerts_aux", "catalog_stars"} <= set(names)  # admin
    assert not {"users", "filters", "queries", "skymaps"} & set(names)  # never listed, as Kowalski
    info = api.data(q("info", command="catalog_info", catalog="ZTF_alerts"))
    assert info["count"] == 5
    idx = api.data(q("info", command="index_info", catalog="ZTF_alerts"))
    assert "_id_" in idx and idx["healpix_d16"]["key"] == [["coordinates.healpix", 1]]
    dbi = api.data(q("info", command="db_info"))
    assert dbi["db"] == api.config["database"]["name"] and dbi["collections"] >= 3


def test_cone_search_shapes(api, data):
    res = api.data(CONE)
    assert sorted(d["candid"] for d in res["ZTF_alerts"]["object1"]) == [1001, 1002, 2001, 2002]
    # list form: names are the stringified pairs with . -> _
    body = {**CONE, "query": {**CONE["query"], "object_coordinates": {
        "cone_search_radius": 0.3, "cone_search_unit": "arcsec", "radec": [[synthetic.RA0, synthetic.DEC0], [10.0, 10.0]]}}}
    res = api.data(body)
    assert set(res["ZTF_alerts"]) == {"[71_6577756, -10_2263957]", "[10_0, 10_0]"}
    assert res["ZTF_alerts"]["[10_0, 10_0]"] == []
    assert sorted(d["candid"] for d in res["ZTF_alerts"]["[71_6577756, -10_2263957]"]) == [1001, 1002, 2002]
    # sexagesimal strings, several catalogs, units
    for radec in ("04:46:37.8661 -10:13:35.025", "04h46m37.8661s -10d13m35.025s", "71.6577756 -10.2263957",
                  [["04:46:37.8661", "-10:13:35.025"]], {"a.b": ["04:46:37.8661", "-10:13:35.025"]}):
        body = {"query_type": "cone_search", "query": {
            "object_coordinates": {"cone_search_radius": 1 / 60, "cone_search_unit": "arcmin", "radec": radec},
            "catalogs": {"ZTF_alerts": {"projection": {"_id": 0, "candid": 1}}, "catalog_stars": {}}}}
        res = api.data(body)
        (name, docs), = res["ZTF_alerts"].items()
        assert sorted(d["candid"] for d in docs) == [1001, 1002, 2001, 2002], radec
        assert len(res["catalog_stars"][name]) == 2  # 0" and 1" away
        if isinstance(radec, dict):
            assert name == "a_b"
    for unit, r in (("deg", 1 / 3600 * 2.5), ("rad", 2.5 / 206264.806)):
        body = {**CONE, "query": {**CONE["query"], "object_coordinates": {
            "cone_search_radius": r, "cone_search_unit": unit, "radec": {"o": [synthetic.RA0, synthetic.DEC0]}},
            "catalogs": {"catalog_stars": {}}}}
        assert len(api.data(body)["catalog_stars"]["o"]) == 3


def test_cone_search_kwargs(api, data):
    body = {**CONE, "kwargs": {"limit": 1, "sort": [["candid", -1]], "filter_first": True}}
    res = api.data(body)
    assert res["ZTF_alerts"]["object1"] == [{"candid": 2002, "objectId": "ZTFpub1"}]
    body = {**CONE, "query": {**CONE["query"], "catalogs": {"ZTF_alerts": {"filter": {"candidate.drb": {"$gt": 0.95}},
                                                                           "projection": {"_id": 0, "candid": 1}}}}}
    assert sorted(d["candid"] for d in api.data(body)["ZTF_alerts"]["object1"]) == [1002, 2001]


def test_near(api, data):
    body = {"query_type": "near", "query": {
        "min_distance": 0.1, "max_distance": 30, "distance_units": "arcsec",
        "radec": {"object1": [synthetic.RA0, synthetic.DEC0]},
        "catalogs": {"catalog_stars": {"filter": {}, "projection": {"_id": 1}}}}, "kwargs": {"filter_first": False}}
    res = api.data(body)
    assert [d["_id"] for d in res["catalog_stars"]["object1"]] == ["star1", "star2", "star3", "star4"]  # by distance
    body["query"]["min_distance"] = 0
    body["query"]["max_distance"] = 2.5
    assert [d["_id"] for d in api.data(body)["catalog_stars"]["object1"]] == ["star0", "star1", "star2"]
    body["kwargs"] = {"limit": 1}
    assert [d["_id"] for d in api.data(body)["catalog_stars"]["object1"]] == ["star0"]
    # default max_distance: 1 arcmin whatever the units
    body = {"query_type": "near", "query": {"radec": [[synthetic.RA0, synthetic.DEC0]], "distance_units": "arcsec",
                                            "catalogs": {"catalog_stars": {}}}}
    assert len(api.data(body)["catalog_stars"]["[71_6577756, -10_2263957]"]) == 5


def test_drop_is_admin_only(api, config, data):
    from kowalski import db
    db.get_db(config)["scratch"].insert_one({"a": 1})
    api.add_user("dropper", "pw")
    r = api.query(q("drop", catalog="scratch"), token=api.token("dropper", "pw"))
    assert r.status_code == 403
    r = api.query(q("drop", catalog="users"))
    assert r.status_code == 400 and "system collection" in r.json()["message"]
    r = api.query(q("drop", catalog="scratch"))
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "Successfully dropped collection"}
    assert "scratch" not in db.get_db(config).list_collection_names()


def test_extended_json_in_and_out(api, config, data):
    from kowalski import db
    import datetime as dt
    oid = db.get_db(config)["events"].insert_one({"when": dt.datetime(2023, 6, 23, 15, 42, 26), "blob": b"\x00\x01",
                                                  "big": 2**62}).inserted_id
    r = api.query(q("find", catalog="events", filter={"_id": {"$oid": str(oid)}}))
    assert r.status_code == 200
    doc = r.json()["data"][0]
    assert doc["_id"] == {"$oid": str(oid)}
    assert doc["when"] == {"$date": "2023-06-23T15:42:26Z"}
    assert doc["blob"] == {"$binary": {"base64": "AAE=", "subType": "00"}}
    assert doc["big"] == 2**62
    r = api.query(q("count_documents", catalog="events", filter={"when": {"$gt": {"$date": "2023-01-01T00:00:00Z"}}}))
    assert r.json()["data"] == 1


def test_slow_query_is_cut_at_max_time_ms(api, config, data):
    from kowalski import db
    db.get_db(config)["big"].insert_many([{"i": i, "s": "x" * 200} for i in range(30000)])
    # the database's own limit answers (ExecutionTimeout), not a client-side wait: no clock in the test
    r = api.query(q("aggregate", catalog="big", pipeline=[{"$group": {"_id": "$i", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}],
                    kwargs={"max_time_ms": 50}))
    assert r.status_code == 400 and "ExecutionTimeout" in r.json()["message"], r.text
    # the same aggregation without the limit completes: the limit, not the query, caused the error
    r = api.query(q("aggregate", catalog="big", pipeline=[{"$group": {"_id": "$i", "n": {"$sum": 1}}}, {"$count": "g"}],
                    kwargs={"max_time_ms": 600000}))
    assert r.status_code == 200 and r.json()["data"] == [{"g": 30000}], r.text
    r = api.query(q("find", catalog="big", filter={"s": {"$regex": "y"}}, kwargs={"max_time_ms": 20}))
    assert r.status_code == 400 and "ExecutionTimeout" in r.json()["message"]
    assert api.get("/", token=api.admin_token).status_code == 200


@pytest.mark.parametrize("hint", [{}, [], [["candid"]], 5])
def test_a_bad_hint_is_a_400_not_a_server_error(api, data, hint):
    """Found by schemathesis: ``"hint": {}`` reached the database as an empty hint and gave a 500."""
    r = api.post("/api/queries", {"query_type": "count_documents", "query": {"catalog": "ZTF_alerts", "filter": {}},
                                  "kwargs": {"hint": hint}}, token=api.admin_token)
    assert r.status_code == 400 and "kwargs.hint must be" in r.json()["message"], r.text


@pytest.mark.parametrize("user", ["admin", "public"])
@pytest.mark.parametrize("qt, query", [
    ("find", {"filter": {}, "projection": {"_id": 0, "candid": 1}}),
    ("find_one", {"filter": {}, "projection": {"_id": 0, "candid": 1}}),
    ("count_documents", {"filter": {}}),
    ("aggregate", {"pipeline": [{"$match": {}}, {"$project": {"_id": 0, "candid": 1}}]}),
    ("find", {"catalog": "ZTF_alerts_aux", "filter": {}, "projection": {"_id": 1}}),
    ("count_documents", {"catalog": "ZTF_alerts_aux", "filter": {"prv_candidates.jd": {"$gt": 0}}}),
])
def test_a_hint_reaches_the_database(api, data, user, qt, query):
    """kwargs.hint is passed on by every query type that takes one, for a user whose history
    rights turn aux queries into pipelines too: the ``_id`` index gives the same answer as no
    hint, an index that does not exist is the database's refusal (an index given as [field,
    direction] pairs once reached every pipeline as a list, which the server refuses)."""
    api.add_user("hinted", "pw")  # default permissions: public data only
    token = api.admin_token if user == "admin" else api.token("hinted", "pw")
    body = {"query_type": qt, "query": {"catalog": "ZTF_alerts", **query}}
    plain = api.data(body, token)
    assert plain, "the synthetic archive has alerts the user may see"
    hinted = api.data({**body, "kwargs": {"hint": [["_id", 1]]}}, token)
    if qt == "find_one":  # the first document in another order may be another one
        assert hinted is not None
    else:  # without a sort, the index's order is the database's to choose
        assert sorted(map(repr, hinted)) == sorted(map(repr, plain)) if isinstance(plain, list) else hinted == plain
    r = api.post("/api/queries", {**body, "kwargs": {"hint": "no_such_index"}}, token=token)
    assert r.status_code == 400 and "no_such_index" in r.json()["message"], r.text
