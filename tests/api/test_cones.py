"""Cone searches through HEALPix pixel ranges answer exactly what the database's own
``$geoWithin/$centerSphere`` and ``$nearSphere`` answer, through the real API.

Random cones of 1″ to 1°, cones at both poles and across RA = 0/360; around each, points at
random distances up to twice the radius (so every cone has points inside and just outside it).
The expected answers come from the database itself on the same documents (its 2dsphere path).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from kowalski import db, sky
from kowalski.astro import position_documents
from tests.api.conftest import Api, ROOT, start_server, stop_server

SEED = 20261201
CATALOG = "cone_points"


def _cones(rng) -> list[tuple[float, float, float]]:
    """(ra, dec, radius in degrees): random ones, the poles, across RA = 0/360."""
    cones = []
    for _ in range(24):
        ra, dec = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))
        cones.append((ra, dec, 10 ** rng.uniform(math.log10(1 / 3600), 0)))  # 1" .. 1 deg
    cones += [(0.0, 90.0, 0.5), (123.0, -89.9995, 2 / 3600), (10.0, 89.99, 60 / 3600),
              (359.9999, 0.0, 60 / 3600), (0.0001, -30.0, 1.0), (180.0, 0.0, 1 / 3600)]
    return cones


def _points_around(rng, ra, dec, radius_deg, n=25):
    """n points at distances uniform in [0, 2 radius] and random bearings (exact on the sphere)."""
    c = SkyCoord(ra * u.deg, dec * u.deg)
    sep = rng.uniform(0, 2 * radius_deg, n) * u.deg
    pa = rng.uniform(0, 360, n) * u.deg
    p = c.directional_offset_by(pa, sep)
    return p.ra.deg % 360.0, p.dec.deg


@pytest.fixture(scope="module")
def cones_db(config):
    rng = np.random.default_rng(SEED)
    cones = _cones(rng)
    ras, decs = [], []
    for ra, dec, r in cones:
        a, b = _points_around(rng, ra, dec, r)
        ras.extend(a), decs.extend(b)
    ras.extend(rng.uniform(0, 360, 500)), decs.extend(np.degrees(np.arcsin(rng.uniform(-1, 1, 500))))
    coll = db.get_db(config)[CATALOG]
    coll.insert_many([{"_id": i, "mag": float(rng.uniform(12, 21)), "coordinates": c}
                      for i, c in enumerate(position_documents(ras, decs))])
    coll.create_index([("coordinates.radec_geojson", "2dsphere")], name="radec_2dsphere")
    assert db.ensure_positions_index(config, CATALOG) == [sky.INDEX_NAME]
    return cones


@pytest.fixture(scope="module")
def api_healpix(config, cones_db):
    proc, url, _ = start_server(config, processes=1, extra_env={"KOWALSKI_DATABASE__POSITIONAL_INDEX": "healpix"})
    yield Api(url, config)
    stop_server(proc)


def _cone(api, ra, dec, radius, unit="deg", projection=None, **kwargs):
    q = {"query_type": "cone_search", "kwargs": kwargs, "query": {
        "object_coordinates": {"radec": {"c": [ra, dec]}, "cone_search_radius": radius, "cone_search_unit": unit},
        "catalogs": {CATALOG: {"filter": {}, "projection": projection or {"_id": 1}}}}}
    r = api.post("/api/queries", q, token=api.admin_token)
    return r


def _geo_within(config, ra, dec, radius_deg, **find):
    q = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180.0, dec], math.radians(radius_deg)]}}}
    return list(db.get_db(config)[CATALOG].find(q, {"_id": 1}, **find))


def test_cones_equal_geowithin_on_random_cones_poles_and_ra_wrap(config, cones_db, api_healpix):
    nonempty = 0
    for ra, dec, radius in cones_db:
        r = _cone(api_healpix, ra, dec, radius)
        assert r.status_code == 200, r.text
        got = {d["_id"] for d in r.json()["data"][CATALOG]["c"]}
        expected = {d["_id"] for d in _geo_within(config, ra, dec, radius)}
        assert got == expected, (ra, dec, radius * 3600, got ^ expected)
        nonempty += bool(expected)
    assert nonempty >= len(cones_db) - 2  # the comparison is not vacuous


def test_near_equals_nearsphere_in_order_with_min_and_max_distance(config, cones_db, api_healpix):
    checked = 0
    for ra, dec, radius in cones_db[::3]:
        lo, hi = radius / 3, radius  # an annulus, degrees
        q = {"query_type": "near", "query": {"radec": {"c": [ra, dec]}, "min_distance": lo, "max_distance": hi,
                                               "distance_units": "deg",
                                               "catalogs": {CATALOG: {"filter": {}, "projection": {"_id": 1}}}}}
        r = api_healpix.post("/api/queries", q, token=api_healpix.admin_token)
        assert r.status_code == 200, r.text
        got = [d["_id"] for d in r.json()["data"][CATALOG]["c"]]
        found = list(db.get_db(config)[CATALOG].find(
            {"coordinates.radec_geojson": {"$nearSphere": [ra - 180.0, dec], "$minDistance": math.radians(lo),
                                           "$maxDistance": math.radians(hi)}}, {"coordinates": 1}))
        # the same documents as the database's $nearSphere, ordered by distance as MongoDB orders
        # them (the embedded server returns them unordered); distances from astropy, not our code
        centre = SkyCoord(ra * u.deg, dec * u.deg)
        sep = {d["_id"]: centre.separation(SkyCoord((d["coordinates"]["radec_geojson"]["coordinates"][0] + 180) * u.deg,
                                                    d["coordinates"]["radec_geojson"]["coordinates"][1] * u.deg)).deg
               for d in found}
        assert got == sorted(sep, key=sep.get), (ra, dec, radius)
        checked += len(found)
    assert checked > 20


def test_sort_skip_limit_and_projection_as_the_database(config, cones_db, api_healpix):
    ra, dec, radius = cones_db[-2]  # 1 degree across RA = 0
    r = _cone(api_healpix, ra, dec, radius, projection={"mag": 1}, sort=[["mag", -1]], skip=2, limit=5)
    assert r.status_code == 200, r.text
    got = r.json()["data"][CATALOG]["c"]
    q = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180.0, dec], math.radians(radius)]}}}
    expected = list(db.get_db(config)[CATALOG].find(q, {"mag": 1}).sort([("mag", -1)]).skip(2).limit(5))
    assert got == expected and len(got) == 5  # same documents, same order, no position added
    r = _cone(api_healpix, ra, dec, radius, projection={"coordinates": 0})
    docs = r.json()["data"][CATALOG]["c"]
    assert docs and all(set(d) == {"_id", "mag"} for d in docs)


def test_documents_without_pixel_ids_are_still_found(config, cones_db, api_healpix):
    """A tool that writes positions without HEALPix ids must not hide them from cone searches."""
    ra, dec, radius = cones_db[0]
    doc = {"_id": "no_pixel", "coordinates": {k: v for k, v in position_documents(ra, dec)[0].items() if k != "healpix"}}
    db.get_db(config)[CATALOG].insert_one(doc)
    try:
        r = _cone(api_healpix, ra, dec, max(radius, 1 / 3600))
        assert "no_pixel" in {d["_id"] for d in r.json()["data"][CATALOG]["c"]}
    finally:
        db.get_db(config)[CATALOG].delete_one({"_id": "no_pixel"})


@pytest.mark.parametrize("radius,unit,ra,dec,message", [
    (0, "arcsec", 10.0, 10.0, "cone_search_radius must be > 0"),
    (-1, "arcsec", 10.0, 10.0, "cone_search_radius must be >= 0"),
    (181, "deg", 10.0, 10.0, "at most 180"),
    (2, "parsec", 10.0, 10.0, "cone_search_unit must be one of"),
    (2, "arcsec", 400.0, 10.0, "ra"),
    (2, "arcsec", 10.0, 95.0, "dec"),
])
def test_bad_cones_are_a_400_saying_what_is_wrong(api_healpix, radius, unit, ra, dec, message):
    r = _cone(api_healpix, ra, dec, radius, unit=unit)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"], r.json()


def test_catalog_without_positions_and_pixel_depth_mismatch_are_refused(config, api_healpix):
    d = db.get_db(config)
    d["no_positions"].insert_one({"_id": 1, "name": "x"})
    d["old_depth"].insert_one({"_id": 1, "coordinates": position_documents(10.0, 10.0)[0]})
    d["old_depth"].create_index([("coordinates.healpix", 1)], name="healpix_d12")
    for coll, message in (("no_positions", "has no positions index"), ("old_depth", "kowalski db migrate")):
        q = {"query_type": "cone_search", "query": {
            "object_coordinates": {"radec": {"c": [10.0, 10.0]}, "cone_search_radius": 2, "cone_search_unit": "arcsec"},
            "catalogs": {coll: {}}}}
        r = api_healpix.post("/api/queries", q, token=api_healpix.admin_token)
        assert r.status_code == 400 and message in r.json()["message"], r.text


def test_migrate_adds_pixel_ids_then_the_index_and_is_resumable(config):
    coll = db.get_db(config)["to_migrate"]
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 360, 300), np.degrees(np.arcsin(rng.uniform(-1, 1, 300)))
    docs = [{"_id": i, "coordinates": {k: v for k, v in c.items() if k != "healpix"}}
            for i, c in enumerate(position_documents(ra, dec))]
    coll.insert_many(docs)
    coll.update_many({"_id": {"$lt": 100}}, {"$set": {"coordinates.healpix": 7}})  # ids at an old depth
    coll.create_index([("coordinates.healpix", 1)], name="healpix_d12")
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": config["database"]["name"]}
    cmd = [sys.executable, "-m", "kowalski.cli", "db", "migrate", "--collection", "to_migrate", "-q"]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert '"updated": 300' in res.stdout and "healpix_d12" in res.stdout
    stored = {d["_id"]: d["coordinates"]["healpix"] for d in coll.find()}
    assert [stored[i] for i in range(300)] == sky.pixels(ra, dec).tolist()
    assert {ix["name"] for ix in coll.list_indexes()} == {"_id_", sky.INDEX_NAME}
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and '"updated": 0' in again.stdout
