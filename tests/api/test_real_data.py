"""Kowalski API behaviours (reference §10) on the real sample alerts ingested by the broker,
cutouts, classifications, and data rights on real documents."""

from __future__ import annotations

import io

import numpy as np
import pytest
from bson import json_util

from tests.api import realdata


@pytest.fixture(scope="module")
def archive(api, config):
    info = realdata.load(config)
    api.add_user("pub", "pw")
    api.add_user("partner", "pw", permissions={"ztf": [1, 2]})
    return info


@pytest.fixture(scope="module")
def pub(api, archive):
    return api.token("pub", "pw")


@pytest.fixture(scope="module")
def partner(api, archive):
    return api.token("partner", "pw")


def test_section10_queries(api, archive, pub):
    cone = {"query_type": "cone_search", "query": {"object_coordinates": {
        "cone_search_radius": 2, "cone_search_unit": "arcsec", "radec": {"object1": [71.6577756, -10.2263957]}},
        "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1, "objectId": 1}}}},
        "kwargs": {"filter_first": False}}
    r = api.query(cone, token=pub)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and body["message"] == "Successfully executed query"
    assert body["data"] == {"ZTF_alerts": {"object1": [{"objectId": "ZTF19abzrhgq", "candid": 1127107111615015007}]}}

    doc = api.data({"query_type": "find_one", "query": {"catalog": "ZTF_alerts", "filter": {}}, "kwargs": {"save": False}}, pub)
    assert doc["candidate"]["programid"] == 1 and "cutoutScience" in doc
    assert api.data({"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candid": {"$lt": 0}},
                     "projection": {"_id": 0, "candid": 1}}, "kwargs": {"save": False, "limit": 1}}, pub) == []
    assert api.data({"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [
        {"$match": {"candid": 1127561445515015011}}, {"$project": {"_id": 0, "candid": 1}}]},
        "kwargs": {"max_time_ms": 2000}}, pub) == [{"candid": 1127561445515015011}]
    assert api.data({"query_type": "count_documents", "query": {"catalog": "ZTF_alerts", "filter": {"candid": {"$lt": 0}}}}, pub) == 0
    assert api.data({"query_type": "estimated_document_count", "query": {"catalog": "ZTF_alerts"}}, pub) == archive["n_public"]
    assert api.data({"query_type": "estimated_document_count", "query": {"catalog": "ZTF_alerts"}}) == archive["n_public"] + 3
    # expected: the public alerts between min and max distance of the position, from the stored coordinates
    from kowalski import db
    d = db.get_db(api.config)
    seps = {}
    for a in d["ZTF_alerts"].find({"candidate.programid": 1}, {"candid": 1, "coordinates.radec_geojson": 1}):
        lon, lat = a["coordinates"]["radec_geojson"]["coordinates"]
        seps[a["candid"]] = _separation_arcsec(lon + 180, lat, 71.6577756, -10.2263957)
    n_found = 0
    for min_d in (0.1, 0):  # §10's example (only ZTF19abzrhgq is there, at 0": nothing), then from 0
        near = api.data({"query_type": "near", "query": {"min_distance": min_d, "max_distance": 30,
                         "distance_units": "arcsec", "radec": {"object1": [71.6577756, -10.2263957]},
                         "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1, "objectId": 1}}}},
                         "kwargs": {"filter_first": False}}, pub)
        got = [x["candid"] for x in near["ZTF_alerts"]["object1"]]
        assert sorted(got) == sorted(c for c, sep in seps.items() if min_d <= sep <= 30), (min_d, got)
        assert [seps[c] for c in got] == sorted(seps[c] for c in got)  # nearest first
        n_found += len(got)
    assert n_found > 0
    one = api.data({"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {},
                    "projection": {"_id": 0, "candid": 1, "objectId": 1}}, "kwargs": {"save": False, "limit": 1}}, pub)
    assert len(one) == 1 and set(one[0]) == {"candid", "objectId"}
    names = api.data({"query_type": "info", "query": {"command": "catalog_names"}}, pub)
    # every collection of the database but the system ones (DESIGN: users, filters, queries, skymaps), as
    # Kowalski lists them (reverse-sorted)
    system = set(api.config["collections"].values())
    assert names == sorted(set(d.list_collection_names()) - system, reverse=True)
    assert {"ZTF_alerts", "ZTF_alerts_aux"} <= set(names) and not system & set(names)


def _separation_arcsec(ra1, dec1, ra2, dec2) -> float:
    """Great-circle distance (haversine), in arcseconds."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return float(np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600)


def test_documents_are_relaxed_extended_json(api, archive, pub):
    r = api.query({"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candid": 2475433850015010009}}}, pub)
    doc = r.json()["data"][0]
    assert set(doc["_id"]) == {"$oid"}
    assert set(doc["cutoutScience"]["stampData"]) == {"$binary"}
    assert doc["candid"] == 2475433850015010009  # int64 as a plain number
    assert doc["coordinates"]["radec_geojson"]["type"] == "Point"
    parsed = json_util.loads(r.text)["data"][0]
    assert isinstance(parsed["cutoutScience"]["stampData"], bytes)


def test_public_user_sees_no_private_copy(api, archive, pub, partner):
    private = set(archive["private_candids"])
    for token, visible in ((pub, False), (partner, True)):
        cone = api.data({"query_type": "cone_search", "query": {"object_coordinates": {
            "cone_search_radius": 5, "cone_search_unit": "arcsec", "radec": {"o": [realdata.RA, realdata.DEC]}},
            "catalogs": {"ZTF_alerts": {"projection": {"_id": 0, "candid": 1}}}}}, token)
        got = {d["candid"] for d in cone["ZTF_alerts"]["o"]}
        assert bool(got & private) is visible
        allc = {d["candid"] for d in api.data({"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {},
                                                "projection": {"_id": 0, "candid": 1}}}, token)}
        assert bool(allc & private) is visible
        aux = api.data({"query_type": "find_one", "query": {"catalog": "ZTF_alerts_aux", "filter": {"_id": "ZTF17aadcvhq"}}}, token)
        # what is stored (read from the database), less what this user may not see: points, not just kinds
        from kowalski import db
        stored = db.get_db(api.config)["ZTF_alerts_aux"].find_one({"_id": "ZTF17aadcvhq"})
        allowed = {1, 2} if visible else {1}
        for key in ("prv_candidates", "fp_hists"):
            expected = sorted(p["jd"] for p in stored.get(key) or [] if p["programid"] in allowed)
            assert sorted(p["jd"] for p in aux.get(key) or []) == expected, key
        pids = {p["programid"] for p in aux["prv_candidates"]} | {p["programid"] for p in aux.get("fp_hists", [])}
        assert 1 in pids and (2 in pids) is visible
        unwound = api.data({"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [
            {"$match": {"objectId": "ZTF19abzrhgq"}},
            {"$lookup": {"from": "ZTF_alerts_aux", "localField": "objectId", "foreignField": "_id", "as": "aux"}},
            {"$unwind": "$aux"}, {"$unwind": "$aux.prv_candidates"},
            {"$group": {"_id": "$aux.prv_candidates.programid", "n": {"$sum": 1}}}]}}, token)
        assert (2 in {g["_id"] for g in unwound}) is visible


def _png(r):
    from PIL import Image
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(r.content))


def test_cutouts(api, archive, pub, partner):
    for cutout in ("science", "template", "difference"):
        img = _png(api.get(f"/api/cutouts/ztf/2475433850015010009/{cutout}/png", token=pub))
        assert img.size == (168, 168) and img.mode == "RGB"
    img = _png(api.get("/api/cutouts/ztf/2475433850015010009/science/png?stretch=asinh&interval=zscale&cmap=viridis&size=63",
                       token=pub))
    assert img.size == (63, 63)
    r = api.get("/api/cutouts/ztf/2475433850015010009/science/fits", token=pub)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/fits"
    assert "candid2475433850015010009" in r.headers["Content-Disposition"] and ".gz" not in r.headers["Content-Disposition"]
    from astropy.io import fits
    with fits.open(io.BytesIO(r.content)) as hdul:
        assert hdul[0].data.shape == (63, 63)
    # errors
    for path, status in (("/api/cutouts/ztf/1/science/png", 404), ("/api/cutouts/ztf/abc/science/png", 400),
                         ("/api/cutouts/ztf/2475433850015010009/sky/png", 400),
                         ("/api/cutouts/ztf/2475433850015010009/science/jpg", 400),
                         ("/api/cutouts/xyz/2475433850015010009/science/png", 400),
                         ("/api/cutouts/ztf/2475433850015010009/science/png?cmap=jet", 400),
                         ("/api/cutouts/ztf/2475433850015010009/science/png?size=5", 400)):
        r = api.get(path, token=pub)
        assert r.status_code == status and r.json()["status"] == "error", (path, r.text)
    assert api.get("/api/cutouts/ztf/2475433850015010009/science/png").status_code == 401
    # data rights: a private alert's cutouts
    private = archive["private_candids"][0]
    assert api.get(f"/api/cutouts/ztf/{private}/science/png", token=pub).status_code == 404
    _png(api.get(f"/api/cutouts/ztf/{private}/science/png", token=partner))


def test_cutout_orientation_follows_survey_layout(api, archive, pub):
    """ZTF stamps carry no WCS: Kowalski's layout (FITS rows bottom-up, North up, East left) applies,
    so the PNG is the FITS array flipped top-down."""
    from astropy.io import fits
    from PIL import Image
    r = api.get("/api/cutouts/ztf/2475433850015010009/science/fits", token=pub)
    with fits.open(io.BytesIO(r.content)) as hdul:
        data = hdul[0].data.astype(float)
    img = Image.open(io.BytesIO(api.get(
        "/api/cutouts/ztf/2475433850015010009/science/png?stretch=linear&interval=min_max&cmap=gray&size=63",
        token=pub).content))
    got = np.asarray(img)[:, :, 0].astype(float)
    corr = {name: np.corrcoef(got.ravel(), arr.ravel())[0, 1]
            for name, arr in (("flipud", data[::-1]), ("same", data), ("rot180", data[::-1, ::-1]))}
    assert corr["flipud"] > 0.999 and max(corr["same"], corr["rot180"]) < 0.99, corr


@pytest.mark.parametrize("cd, transform", [
    ([[-1, 0], [0, 1]], lambda a: a[::-1]),              # standard: East left, North up in FITS order
    ([[1, 0], [0, 1]], lambda a: a[::-1, ::-1]),         # East right: mirror
    ([[-1, 0], [0, -1]], lambda a: a),                   # North down: already top-first
    ([[0, -1], [1, 0]], lambda a: a.T[::-1]),            # axes swapped on the sky
])
def test_orientation_from_wcs(cd, transform):
    from astropy.io import fits
    from api.handlers.cutouts import north_up_east_left
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CD1_1": cd[0][0] * 2.8e-4,
                          "CD1_2": cd[0][1] * 2.8e-4, "CD2_1": cd[1][0] * 2.8e-4, "CD2_2": cd[1][1] * 2.8e-4})
    a = np.arange(12.0).reshape(3, 4) if cd[0][1] == 0 else np.arange(16.0).reshape(4, 4)
    out = north_up_east_left(a, header, "ztf")
    assert np.array_equal(out, transform(a))


def test_classifications(api, archive, pub, partner):
    candid = 2475433850015010009
    r = api.put("/api/classifications/ztf", {str(candid): {"human_labels": {"Ia": 0.8, "Ib": 0.1}}}, token=pub)
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "added classifications for ztf alerts"}
    r = api.put("/api/classifications/ztf", {str(candid): {"human_labels": {"Ia": 0.2, "Ic": 0.7}, "ml_scores": {"m": 0.3}}}, token=pub)
    assert r.status_code == 200
    r = api.get(f"/api/classifications/ztf/{candid}", token=pub)
    data = r.json()["data"]
    assert data["human_labels"] == {"Ia": 0.2, "Ib": 0.1, "Ic": 0.7} and data["ml_scores"] == {"m": 0.3}
    assert data["candid"] == candid and data["objectId"] == "ZTF17aadcvhq"
    r = api.delete("/api/classifications/ztf", {str(candid): {"human_labels": ["Ia", "Ic"]}}, token=pub)
    assert r.status_code == 200 and r.json()["message"] == "deleted classifications for ztf alerts"
    assert api.get(f"/api/classifications/ztf/{candid}", token=pub).json()["data"]["human_labels"] == {"Ib": 0.1}
    # list and comma-separated forms
    api.put("/api/classifications/ztf", {str(candid): {"human_labels": ["AGN"]}}, token=pub)
    api.put("/api/classifications/ztf", {str(candid): {"human_labels": "CV,Nova"}}, token=pub)
    assert api.get(f"/api/classifications/ztf/{candid}", token=pub).json()["data"]["human_labels"] == \
        {"Ib": 0.1, "AGN": 1.0, "CV": 1.0, "Nova": 1.0}
    # authentication is required (unlike Kowalski)
    assert api.get(f"/api/classifications/ztf/{candid}").status_code == 401
    assert api.put("/api/classifications/ztf", {str(candid): {"human_labels": ["x"]}}).status_code == 401
    # unknown alerts, bad bodies
    r = api.put("/api/classifications/ztf", {"1": {"human_labels": ["x"]}}, token=pub)
    assert r.status_code == 400 and r.json()["message"] == "not all alerts found in ztf collection"
    for body in ({"abc": {"human_labels": ["x"]}}, {str(candid): {"labels": ["x"]}}, {str(candid): {"human_labels": {"a.b": 1}}},
                 {str(candid): {"human_labels": {"a": "high"}}}, {str(candid): {"human_labels": {"a": 1.5}}},
                 {str(candid): {"human_labels": {"x" * 65: 1}}}, {}):
        assert api.put("/api/classifications/ztf", body, token=pub).status_code == 400, body
    assert api.get("/api/classifications/ztf/1", token=pub).status_code == 404
    # data rights: a private alert can be neither labelled nor read by a public-only user
    private = archive["private_candids"][0]
    r = api.put("/api/classifications/ztf", {str(private): {"human_labels": ["secret"]}}, token=partner)
    assert r.status_code == 200
    assert api.get(f"/api/classifications/ztf/{private}", token=partner).status_code == 200
    assert api.get(f"/api/classifications/ztf/{private}", token=pub).status_code == 404
    assert api.put("/api/classifications/ztf", {str(private): {"human_labels": ["x"]}}, token=pub).status_code == 400
    docs = api.data({"query_type": "find", "query": {"catalog": "ZTF_alerts_classifications", "filter": {}}}, pub)
    assert private not in {d["_id"] for d in docs} and candid in {d["_id"] for d in docs}
