"""Small synthetic ZTF-like documents for API tests that do not need real alerts."""

from __future__ import annotations

from kowalski import db

RA0, DEC0 = 71.6577756, -10.2263957


def alert(candid: int, object_id: str, programid: int, ra: float = RA0, dec: float = DEC0, jd: float = 2459000.5,
          drb: float = 0.9) -> dict:
    return {
        "candid": candid, "objectId": object_id, "schemavsn": "4.01",
        "candidate": {"candid": candid, "jd": jd, "programid": programid, "ra": ra, "dec": dec, "drb": drb,
                      "magpsf": 18.0, "fid": 1},
        "coordinates": {"radec_geojson": {"type": "Point", "coordinates": [ra - 180.0, dec]}},
        "classifications": {"braai": drb},
    }


def load(config) -> dict:
    """Alerts: 3 public (programid 1), 2 private (programid 2), history with both kinds of points."""
    d = db.get_db(config)
    alerts = [
        alert(1001, "ZTFpub1", 1, jd=2459000.5),
        alert(1002, "ZTFpub1", 1, jd=2459001.5, drb=0.99),
        alert(1003, "ZTFfar1", 1, ra=200.0, dec=30.0, jd=2459002.5),
        alert(2001, "ZTFpriv1", 2, ra=RA0 + 0.5 / 3600, jd=2459003.5, drb=0.999),
        alert(2002, "ZTFpub1", 2, jd=2459004.5, drb=0.5),
    ]
    d["ZTF_alerts"].insert_many(alerts)
    d["ZTF_alerts_aux"].insert_many([
        {"_id": "ZTFpub1", "cross_matches": {"CLU": []},
         "prv_candidates": [{"jd": 2458990.5, "programid": 1, "magpsf": 18.5, "candid": 11},
                            {"jd": 2458991.5, "programid": 2, "magpsf": 17.0, "candid": 12},
                            {"jd": 2458992.5, "programid": 1, "magpsf": 18.1, "candid": 13}],
         "fp_hists": [{"jd": 2458990.6, "programid": 2, "forcediffimflux": 5.0},
                      {"jd": 2458991.6, "programid": 1, "forcediffimflux": 6.0}]},
        {"_id": "ZTFpriv1", "cross_matches": {},
         "prv_candidates": [{"jd": 2459003.5, "programid": 2, "magpsf": 16.0, "candid": 21}], "fp_hists": []},
        {"_id": "ZTFfar1", "cross_matches": {}, "prv_candidates": [{"jd": 2459002.5, "programid": 1, "candid": 31}]},
    ])
    d["catalog_stars"].insert_many([
        {"_id": f"star{i}", "mag": 10 + i, "coordinates": {"radec_geojson": {"type": "Point", "coordinates": [RA0 - 180 + i / 3600, DEC0]}}}
        for i in range(5)
    ])
    d["catalog_stars"].create_index([("coordinates.radec_geojson", "2dsphere")], name="radec")
    d["filters"].insert_one({"filter_id": 1, "group_id": 1, "catalog": "ZTF_alerts", "fv": []})
    return {"public": [1001, 1002, 1003], "private": [2001, 2002]}
