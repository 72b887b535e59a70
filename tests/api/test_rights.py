"""Data rights: a public-only user never sees a programid-2 alert or history point by any query
form, and a non-admin cannot read system collections by any route."""

from __future__ import annotations

import json

import pytest
from bson import json_util

from tests.api import synthetic

PRIVATE = {2001, 2002}        # synthetic.load: the programid-2 alerts
PRIVATE_POINTS = {12, 21}     # synthetic.load: the programid-2 history points (prv_candidates)


@pytest.fixture(scope="module")
def tokens(api, config):
    synthetic.load(config)
    api.add_user("pub", "pw")  # default permissions: public only
    api.add_user("partner", "pw", permissions={"ztf": [1, 2]})
    return {"pub": api.token("pub", "pw"), "partner": api.token("partner", "pw"), "admin": api.admin_token}


def run(api, token, qt, **query):
    kwargs = query.pop("kwargs", {})
    return api.data({"query_type": qt, "query": query, "kwargs": kwargs}, token)


def candids(obj) -> set[int]:
    """Every alert candid anywhere in a response."""
    found = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "candid" and isinstance(v, int):
                    found.add(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(obj)
    return found


def programids(obj) -> set[int]:
    text = json_util.dumps(obj)
    found = set()

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "programid":
                    found.add(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(json_util.loads(text))
    return found


ALERT_QUERIES = [
    ("find", dict(catalog="ZTF_alerts", filter={})),
    ("find", dict(catalog="ZTF_alerts", filter={"candidate.programid": 2})),
    ("find", dict(catalog="ZTF_alerts", filter={"candidate.programid": {"$in": [1, 2]}}, projection={"candidate.programid": 1, "candid": 1})),
    ("find", dict(catalog="ZTF_alerts", filter={"$or": [{"candid": 2001}, {"candid": 2002}]})),
    ("find", dict(catalog="ZTF_alerts", filter="{'candidate.programid': 2}")),
    ("find_one", dict(catalog="ZTF_alerts", filter={"candid": 2001})),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$match": {}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$sort": {"candid": -1}}, {"$limit": 2}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$match": {"candidate.programid": 2}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$geoNear": {
        "near": {"type": "Point", "coordinates": [synthetic.RA0 - 180, synthetic.DEC0]},
        "distanceField": "d", "spherical": True}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$facet": {"all": [{"$match": {}}],
                                                                   "p2": [{"$match": {"candidate.programid": 2}}]}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$limit": 1}, {"$unionWith": "ZTF_alerts"}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$limit": 1}, {"$unionWith": {"coll": "ZTF_alerts", "pipeline": [{"$match": {"candid": 2001}}]}}])),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$lookup": {
        "from": "ZTF_alerts", "localField": "_id", "foreignField": "objectId", "as": "alerts"}}])),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$lookup": {
        "from": "ZTF_alerts", "let": {"o": "$_id"}, "pipeline": [{"$match": {"$expr": {"$eq": ["$objectId", "$$o"]}}}], "as": "alerts"}}])),
    ("aggregate", dict(catalog="catalog_stars", pipeline=[{"$limit": 1}, {"$graphLookup": {
        "from": "ZTF_alerts", "startWith": "ZTFpub1", "connectFromField": "objectId", "connectToField": "objectId", "as": "g"}}])),
    ("aggregate", dict(catalog="catalog_stars", pipeline=[{"$limit": 1}, {"$lookup": {
        "from": "ZTF_alerts_aux", "pipeline": [{"$lookup": {"from": "ZTF_alerts", "pipeline": [], "as": "deep"}}], "as": "x"}}])),
    ("cone_search", dict(object_coordinates={"cone_search_radius": 10, "cone_search_unit": "arcsec",
                                             "radec": {"o": [synthetic.RA0, synthetic.DEC0]}},
                         catalogs={"ZTF_alerts": {"filter": {}}})),
    ("near", dict(radec={"o": [synthetic.RA0, synthetic.DEC0]}, max_distance=10, distance_units="arcsec",
                  catalogs={"ZTF_alerts": {"filter": {"candidate.programid": 2}}})),
]


@pytest.mark.parametrize("qt, query", ALERT_QUERIES, ids=[f"{i}-{q[0]}" for i, q in enumerate(ALERT_QUERIES)])
def test_public_user_never_sees_programid_2_alerts(api, tokens, qt, query):
    res = run(api, tokens["pub"], qt, **json.loads(json.dumps(query)))
    assert not candids(res) & PRIVATE, res
    res_admin = run(api, tokens["admin"], qt, **json.loads(json.dumps(query)))
    res_partner = run(api, tokens["partner"], qt, **json.loads(json.dumps(query)))
    # every query reaches a private alert for those who may see it, so an empty answer cannot pass
    assert candids(res_admin) & PRIVATE, res_admin
    assert candids(res_partner) == candids(res_admin)
    # and the public user sees all the rest (where no $limit picks different documents)
    if "$limit" not in json.dumps(query):
        assert candids(res) == candids(res_admin) - PRIVATE - PRIVATE_POINTS, (candids(res), candids(res_admin))


def test_counts_are_restricted(api, tokens):
    pub, admin = tokens["pub"], tokens["admin"]
    assert run(api, pub, "count_documents", catalog="ZTF_alerts", filter={}) == 3
    assert run(api, pub, "count_documents", catalog="ZTF_alerts", filter={"candidate.programid": 2}) == 0
    assert run(api, pub, "estimated_document_count", catalog="ZTF_alerts") == 3
    assert run(api, admin, "estimated_document_count", catalog="ZTF_alerts") == 5
    assert run(api, pub, "info", command="catalog_info", catalog="ZTF_alerts")["count"] == 3
    assert run(api, pub, "aggregate", catalog="ZTF_alerts", pipeline=[{"$count": "n"}]) == [{"n": 3}]
    assert run(api, pub, "aggregate", catalog="ZTF_alerts",
               pipeline=[{"$group": {"_id": "$candidate.programid", "n": {"$sum": 1}}}]) == [{"_id": 1, "n": 3}]


AUX_QUERIES = [
    ("find", dict(catalog="ZTF_alerts_aux", filter={})),
    ("find", dict(catalog="ZTF_alerts_aux", filter={"_id": "ZTFpub1"}, projection={"prv_candidates": 1, "fp_hists": 1})),
    ("find", dict(catalog="ZTF_alerts_aux", filter={"prv_candidates.programid": 2})),
    ("find", dict(catalog="ZTF_alerts_aux", filter={"$expr": {"$gt": [{"$size": "$prv_candidates"}, 2]}})),
    ("find", dict(catalog="ZTF_alerts_aux", filter={}, projection={"p": "$prv_candidates"}, kwargs={"sort": [["prv_candidates.jd", 1]]})),
    ("find_one", dict(catalog="ZTF_alerts_aux", filter={"_id": "ZTFpub1"})),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$unwind": "$prv_candidates"}, {"$replaceRoot": {"newRoot": "$prv_candidates"}}])),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$match": {"_id": "ZTFpub1"}}, {"$project": {"fp_hists": 1, "prv_candidates": 1}}])),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$match": {"prv_candidates.programid": 2}}])),
    ("aggregate", dict(catalog="ZTF_alerts_aux", pipeline=[{"$facet": {"x": [{"$unwind": "$fp_hists"}]}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$match": {"candid": 1001}}, {"$lookup": {
        "from": "ZTF_alerts_aux", "localField": "objectId", "foreignField": "_id", "as": "aux"}}])),
    ("aggregate", dict(catalog="catalog_stars", pipeline=[{"$limit": 1}, {"$unionWith": "ZTF_alerts_aux"}])),
    ("aggregate", dict(catalog="catalog_stars", pipeline=[{"$limit": 1}, {"$unionWith": {"coll": "ZTF_alerts_aux", "pipeline": [{"$unwind": "$prv_candidates"}]}}])),
]


@pytest.mark.parametrize("qt, query", AUX_QUERIES, ids=[f"{i}-{q[0]}" for i, q in enumerate(AUX_QUERIES)])
def test_public_user_never_sees_programid_2_history_points(api, tokens, qt, query):
    res = run(api, tokens["pub"], qt, **json.loads(json.dumps(query)))
    assert 2 not in programids(res), res
    assert not candids(res) & ({12, 21} | PRIVATE), res
    res_partner = run(api, tokens["partner"], qt, **json.loads(json.dumps(query)))
    res_admin = run(api, tokens["admin"], qt, **json.loads(json.dumps(query)))
    assert json_util.dumps(res_partner, sort_keys=True) == json_util.dumps(res_admin, sort_keys=True)


def test_history_is_filtered_point_by_point(api, tokens):
    doc = run(api, tokens["pub"], "find_one", catalog="ZTF_alerts_aux", filter={"_id": "ZTFpub1"})
    assert [p["candid"] for p in doc["prv_candidates"]] == [11, 13]
    assert [p["forcediffimflux"] for p in doc["fp_hists"]] == [6.0]
    assert doc["cross_matches"] == {"CLU": []}
    assert run(api, tokens["pub"], "count_documents", catalog="ZTF_alerts_aux", filter={"prv_candidates.programid": 2}) == 0
    assert run(api, tokens["partner"], "count_documents", catalog="ZTF_alerts_aux", filter={"prv_candidates.programid": 2}) == 2
    sizes = run(api, tokens["pub"], "aggregate", catalog="ZTF_alerts_aux",
                pipeline=[{"$project": {"n": {"$size": "$prv_candidates"}}}, {"$sort": {"_id": 1}}])
    assert sizes == [{"_id": "ZTFfar1", "n": 1}, {"_id": "ZTFpriv1", "n": 0}, {"_id": "ZTFpub1", "n": 2}]


SYSTEM_QUERIES = [
    ("find", dict(catalog="users", filter={})),
    ("find_one", dict(catalog="users", filter={})),
    ("count_documents", dict(catalog="users", filter={})),
    ("estimated_document_count", dict(catalog="users")),
    ("aggregate", dict(catalog="users", pipeline=[{"$match": {}}])),
    ("aggregate", dict(catalog="filters", pipeline=[{"$match": {}}])),
    ("find", dict(catalog=" users ", filter={})),
    ("info", dict(command="catalog_info", catalog="users")),
    ("info", dict(command="index_info", catalog="queries")),
    ("drop", dict(catalog="users")),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$lookup": {"from": "users", "pipeline": [], "as": "u"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$lookup": {"from": "users", "localField": "objectId", "foreignField": "_id", "as": "u"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$unionWith": "users"}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$unionWith": {"coll": "skymaps"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$graphLookup": {"from": "users", "startWith": "admin",
                                                                         "connectFromField": "_id", "connectToField": "_id", "as": "u"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$facet": {"u": [{"$lookup": {"from": "users", "pipeline": [], "as": "u"}}]}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$lookup": {"from": "catalog_stars", "pipeline": [
        {"$unionWith": {"coll": "filters"}}], "as": "u"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$lookup": {"from": "system.views", "pipeline": [], "as": "u"}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$currentOp": {}}])),
    ("aggregate", dict(catalog="ZTF_alerts", pipeline=[{"$documents": [{"a": 1}]}])),
    ("cone_search", dict(object_coordinates={"cone_search_radius": 1, "cone_search_unit": "deg", "radec": {"o": [1, 1]}},
                         catalogs={"users": {}})),
    ("near", dict(radec={"o": [1, 1]}, catalogs={"filters": {}})),
]


@pytest.mark.parametrize("qt, query", SYSTEM_QUERIES, ids=[f"{i}-{q[0]}" for i, q in enumerate(SYSTEM_QUERIES)])
def test_non_admin_cannot_read_system_collections(api, tokens, qt, query):
    r = api.query({"query_type": qt, "query": query}, token=tokens["pub"])
    assert r.status_code in (400, 403), r.text
    body = r.json()
    assert body["status"] == "error" and "data" not in body
    assert "password" not in r.text


def test_system_collections_not_listed_for_non_admins(api, tokens):
    names = run(api, tokens["pub"], "info", command="catalog_names")
    assert "ZTF_alerts" in names and not {"users", "filters", "queries", "skymaps"} & set(names)
    admin = run(api, tokens["admin"], "info", command="catalog_names")  # not for the admin either (Kowalski)
    assert "ZTF_alerts" in admin and not {"users", "filters", "queries", "skymaps"} & set(admin)


def test_admin_reads_system_collections(api, tokens):
    users = run(api, tokens["admin"], "find", catalog="users", filter={}, projection={"password": 0})
    assert {u["_id"] for u in users} >= {"pub", "partner", api.admin[0]}


def test_forbidden_operators_refused_for_everyone(api, tokens):
    for token in (tokens["admin"], tokens["pub"]):
        for body in (
            {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"$where": "true"}}},
            {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$match": {"$expr": {"$function": {"body": "x", "args": [], "lang": "js"}}}}]}},
            {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$lookup": {"from": "ZTF_alerts", "pipeline": [{"$out": "x"}], "as": "a"}}]}},
            {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": "[{'$merge': {'into': 'x'}}]"}},
            {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": "{'$where': 'true'}"}},
            {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [{"$group": {"_id": None, "x": {"$accumulator": {}}}}]}},
        ):
            r = api.query(body, token=token)
            assert r.status_code == 400 and "is not allowed" in r.json()["message"], r.text


def test_granting_permissions_takes_effect(api, tokens):
    api.add_user("later", "pw")
    t = api.token("later", "pw")
    assert run(api, t, "count_documents", catalog="ZTF_alerts", filter={}) == 3
    r = api.put("/api/users/later", {"permissions": {"ztf": [1, 2]}}, token=tokens["admin"])
    assert r.status_code == 200
    # each worker caches users for api.user_cache_seconds (0.2 s in tests): wait, with a wide deadline
    from tests.api.test_auth_users import wait_for_status
    wait_for_status(lambda: run(api, t, "count_documents", catalog="ZTF_alerts", filter={}), 5, deadline_s=30)
