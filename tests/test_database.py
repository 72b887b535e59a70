"""Real database: round trip, indexes from config, and $geoWithin/$centerSphere vs brute force."""

import math

import numpy as np
from bson import Int64

from kowalski import db


def test_round_trip_and_indexes(config):
    d = db.get_db(config)
    coll = d[db.alerts_collection(config, "ztf")]
    names = {ix["name"] for ix in coll.list_indexes()}
    assert {"candid_unique", "objectId", "jd", "healpix_d16"} <= names
    assert ("radec" in names) is db.wants_geo_index(config)
    doc = {"candid": Int64(2475433850015010009), "objectId": "ZTF18abc", "candidate": {"jd": 2460229.93}}
    coll.insert_one(dict(doc))
    got = coll.find_one({"candid": 2475433850015010009}, {"_id": 0})
    assert got == doc and isinstance(got["candid"], int)
    # unique candid is enforced
    import pymongo.errors
    try:
        coll.insert_one(dict(doc))
        raise AssertionError("duplicate candid accepted")
    except pymongo.errors.DuplicateKeyError:
        pass


def _haversine_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(a)))


def test_cone_search_matches_brute_force(config):
    rng = np.random.default_rng(42)
    n = 1000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))  # uniform on the sphere
    coll = db.get_db(config)["cone_test"]
    coll.create_index([("coordinates.radec_geojson", "2dsphere")])
    coll.insert_many([
        {"_id": i, "ra": float(ra[i]), "dec": float(dec[i]),
         "coordinates": {"radec_geojson": {"type": "Point", "coordinates": [float(ra[i]) - 180.0, float(dec[i])]}}}
        for i in range(n)
    ])
    checked = 0
    # centres on random points, near the poles and across RA=0/360; radii from 1 to 20 degrees
    centres = [(float(ra[i]), float(dec[i])) for i in range(8)] + [(0.5, 0.0), (359.5, 10.0), (10.0, 88.0), (200.0, -89.0)]
    for k, (cra, cdec) in enumerate(centres):
        radius_deg = [1.0, 5.0, 12.0, 20.0][k % 4]
        query = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[cra - 180.0, cdec], math.radians(radius_deg)]}}}
        got = {d["_id"] for d in coll.find(query, {"_id": 1})}
        dist = _haversine_deg(cra, cdec, ra, dec)
        # points within 1e-9 deg of the boundary are ambiguous in floating point; there are none in practice
        expected = {i for i in range(n) if dist[i] <= radius_deg}
        assert got == expected, (cra, cdec, radius_deg, got ^ expected)
        checked += len(expected)
    assert checked > 50  # the comparison is not vacuous
