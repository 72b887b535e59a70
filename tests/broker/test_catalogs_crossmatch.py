"""Catalog loading (CSV, FITS, Parquet), synthetic catalogs, and the in-memory cross-match,
checked against the database's own $geoWithin/$centerSphere cone search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.catalogs import CatalogError, load_catalog, synth_catalog
from broker.stages.crossmatch import CrossMatcher, verify_catalogs
from kowalski import db
from tests.conftest import shared_data

FILES = [("CIRADA_VLASS1QL_table1_components_v1_head100.csv", "VLASS_sample", 99),
         ("igaps-dr1-215a-small.fits.gz", "IGAPS_sample", 100),
         ("ztf_000250_zg_c01_q1_dr5.parquet", "ZTF_matchfile_sample", 5449)]


@pytest.mark.parametrize("fname,name,n", FILES)
def test_load_real_catalog_files(config, fname, name, n):
    res = load_catalog(config, shared_data("catalogs", fname), name, progress=False)
    assert res["inserted"] == n and res["skipped"] == 0
    coll = db.get_db(config)[name]
    assert coll.count_documents({"coordinates.radec_geojson.type": "Point"}) == n
    names = {ix["name"] for ix in coll.list_indexes()}
    assert "healpix_d16" in names and ("radec_2dsphere" in names) is db.wants_geo_index(config)
    # loading again adds nothing (same _id per row)
    assert load_catalog(config, shared_data("catalogs", fname), name, progress=False)["inserted"] == 0


def test_bad_catalog_input(config, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec,name\n10.0,20.0,a\nnan,5,b\n400,5,c\n11.0,-91,d\n12.0,21.0,e\n")
    res = load_catalog(config, bad, "bad_rows", progress=False)
    assert res["inserted"] == 2 and res["skipped"] == 3  # good rows kept, bad ones counted
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("x,y\n1,2\n")
    with pytest.raises(CatalogError, match="no ra column found"):
        load_catalog(config, nocol, "nocol", progress=False)
    with pytest.raises(CatalogError, match="reserved"):
        load_catalog(config, bad, "users", progress=False)


def test_crossmatch_equals_database_cone_search(config):
    centres = [(210.1037407, 64.2197152), (71.6577756, -10.2263957), (0.001, 1.0)]  # incl. RA wrap
    synth_catalog(config, "xm_synth", 6000, centres=centres, density_per_deg2=20000, seed=3, progress=False)
    radius_arcsec = 30.0
    cfg = type(config)({**config, "crossmatch": {"ztf": {"xm_synth": {"radius_arcsec": radius_arcsec, "max_results": 1000}}}})
    rng = np.random.default_rng(0)
    alerts = []
    for ra, dec in centres:
        for _ in range(20):
            alerts.append({"candidate": {"ra": (ra + rng.normal(0, 0.05)) % 360, "dec": dec + rng.normal(0, 0.05)}})
    got = CrossMatcher(cfg, "ztf")(alerts)
    coll = db.get_db(config)["xm_synth"]
    total = 0
    for a, m in zip(alerts, got):
        ra, dec = a["candidate"]["ra"], a["candidate"]["dec"]
        q = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180, dec],
                                                                           math.radians(radius_arcsec / 3600)]}}}
        expected = {d["_id"] for d in coll.find(q, {"_id": 1})}
        assert {d["_id"] for d in m["xm_synth"]} == expected
        dists = [d["coordinates"]["distance_arcsec"] for d in m["xm_synth"]]
        assert dists == sorted(dists) and all(x <= radius_arcsec for x in dists)
        total += len(expected)
    assert total > 20  # the comparison is not vacuous


def _cone_ids(config, name, ra, dec, radius_arcsec):
    q = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180, dec],
                                                                       math.radians(radius_arcsec / 3600)]}}}
    return {d["_id"] for d in db.get_db(config)[name].find(q, {"_id": 1})}


def test_crossmatch_cache_built_from_collection_projected_and_refreshed(config):
    """A catalog inserted by other means (no cache written) is cached from the collection; the
    configured projection applies; appended or re-created catalogs are picked up."""
    import shutil

    from broker.stages.crossmatch import cache_path

    res = load_catalog(config, shared_data("catalogs", "CIRADA_VLASS1QL_table1_components_v1_head100.csv"),
                       "vlass_cached", progress=False)
    assert res["inserted"] == 99
    folder = cache_path(config, "vlass_cached")
    assert (folder / "docs.bson").exists()  # written while loading
    shutil.rmtree(folder)  # as if the catalog had been inserted by another tool
    coll = db.get_db(config)["vlass_cached"]
    target = coll.find_one({}, sort=[("_id", 1)])
    lon, lat = target["coordinates"]["radec_geojson"]["coordinates"]
    ra, dec = lon + 180.0, lat
    spec = {"radius_arcsec": 5.0, "max_results": 10, "projection": {"coordinates.radec_str": 1}}
    cfg = type(config)({**config, "crossmatch": {"ztf": {"vlass_cached": spec}}})
    xm = CrossMatcher(cfg, "ztf", refresh_s=0.0)
    (got,) = xm([{"candidate": {"ra": ra + 1e-4, "dec": dec}}])
    assert (folder / "docs.bson").exists()
    assert {d["_id"] for d in got["vlass_cached"]} == _cone_ids(config, "vlass_cached", ra + 1e-4, dec, 5.0)
    first = got["vlass_cached"][0]
    assert first["_id"] == target["_id"]
    assert set(first) == {"_id", "coordinates"}  # projection: only _id and coordinates kept
    assert first["coordinates"]["radec_str"] == target["coordinates"]["radec_str"]
    assert first["coordinates"]["distance_arcsec"] == pytest.approx(
        1e-4 * math.cos(math.radians(dec)) * 3600, abs=0.011)

    # a source appended by another tool: the workers never count (a scan on the local database);
    # the broker's start-up verification counts once, rebuilds, and running matchers reopen it
    new = {"_id": "added", "name": "x", "coordinates": {"radec_geojson": {"type": "Point", "coordinates": [lon + 2e-4, lat]}}}
    coll.insert_one(new)
    assert verify_catalogs(cfg, "ztf") == {"vlass_cached": 100}
    (got,) = xm([{"candidate": {"ra": ra + 1e-4, "dec": dec}}])
    assert "added" in {d["_id"] for d in got["vlass_cached"]}

    # dropped and re-created by another tool (a new collection UUID): rebuilt without counting
    coll.drop()
    coll.insert_one({**new, "_id": "alone"})
    (got,) = xm([{"candidate": {"ra": ra + 1e-4, "dec": dec}}])
    assert [d["_id"] for d in got["vlass_cached"]] == ["alone"]


def test_crossmatch_cache_corrupt_is_rebuilt(config):
    from broker.stages.crossmatch import cache_path

    centres = [(150.0, 2.0)]
    synth_catalog(config, "xm_corrupt", 500, centres=centres, density_per_deg2=20000, seed=5, progress=False)
    folder = cache_path(config, "xm_corrupt")
    (folder / "meta.json").write_text("{not json")
    cfg = type(config)({**config, "crossmatch": {"ztf": {"xm_corrupt": {"radius_arcsec": 60.0}}}})
    (got,) = CrossMatcher(cfg, "ztf")([{"candidate": {"ra": 150.0, "dec": 2.0}}])
    assert {d["_id"] for d in got["xm_corrupt"]} == _cone_ids(config, "xm_corrupt", 150.0, 2.0, 60.0) != set()


def test_catalog_cache_command(config):
    """`kowalski catalog cache NAME` rebuilds the cache of a catalog edited by another tool;
    an unknown catalog is a clear error."""
    import json
    import os
    import subprocess
    import sys

    from broker.stages.crossmatch import load_catalog_index

    synth_catalog(config, "xm_cmd", 300, centres=[(10.0, 5.0)], density_per_deg2=20000, seed=9, progress=False)
    db.get_db(config)["xm_cmd"].delete_many({"_id": {"$lt": 100}})  # count -> 200, cache still 300
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": config["database"]["name"]}
    r = subprocess.run([sys.executable, "-m", "kowalski.cli", "catalog", "cache", "xm_cmd"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["cached"] == 200
    assert load_catalog_index(config, "xm_cmd").count == 200
    r = subprocess.run([sys.executable, "-m", "kowalski.cli", "catalog", "cache", "no_such_catalog"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no collection 'no_such_catalog'" in r.stderr
