"""Catalog loading (CSV, FITS, Parquet), synthetic catalogs, and the in-memory cross-match,
checked against the database's own $geoWithin/$centerSphere cone search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from broker.catalogs import CatalogError, load_catalog, synth_catalog
from broker.stages.crossmatch import CrossMatcher
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
    assert "radec_2dsphere" in {ix["name"] for ix in coll.list_indexes()}
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
