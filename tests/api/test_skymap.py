"""Skymaps through the real API: Kowalski's /api/skymap routes and messages, every input form, bad
input, and the ``skymap`` query type checked against a brute-force point-in-region test.

The skymap: no installed package ships a real one (mocpy's ``bayestar.multiorder.fits`` is in its
source tree, not its wheel; ligo.skymap is not installed), so the tests build one from a published
event: LIGO/Virgo's GW170817 localisation (GCN 21513: 90% area 28 deg², distance 40 ± 8 Mpc)
approximated by an elongated Gaussian on a BAYESTAR-like adaptive multi-order grid, written as a
3-D multi-order FITS file (``kowalski.skymap_synth``). The alerts are the real ZTF sample alerts
(plus programid-2 copies for data rights), see tests/api/realdata.py.

The brute force here does not use the server's code: it computes each credible region with numpy
from the multi-order map (densest cells first; a tie at the threshold kept whole) and tests each
alert's pixel at every order of the map against the region's cells.
"""

from __future__ import annotations

import base64
import http.server
import io
import math
import socket
import threading

import numpy as np
import pytest
from bson import json_util

from kowalski import db, sky, skymap_synth, skymaps
from tests.api import realdata
from tests.api.conftest import Api, start_server, stop_server

DATEOBS = "2017-08-17T12:41:04.400000"


# --- fixtures ------------------------------------------------------------------------------------

class _Files(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files():
    """A plain HTTP file server (the stand-in for GraceDB / the GCN archive) and one that accepts
    connections and never answers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # never accepted: the request waits for an answer that never comes
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "hang": f"http://127.0.0.1:{hang.getsockname()[1]}",
           "files": _Files.files}
    server.shutdown()
    hang.close()


@pytest.fixture(scope="module")
def api(config):
    proc, url, _ = start_server(config, processes=1, extra_env={"KOWALSKI_SKYMAPS__FETCH_TIMEOUT_S": "2",
                                                                   "KOWALSKI_SKYMAPS__FETCH_PRIVATE_HOSTS": "true"})
    client = Api(url, config)
    yield client
    client.session.close()
    stop_server(proc)


@pytest.fixture(scope="module")
def archive(api, config):
    info = realdata.load(config)
    api.add_user("sky", "pw")
    return info


@pytest.fixture(scope="module")
def gw170817():
    return skymap_synth.published()


@pytest.fixture
def fresh(config):
    """No stored skymaps before the test (tests count what they store)."""
    db.get_db(config)["skymaps"].delete_many({})
    return db.get_db(config)["skymaps"]


def put(api, body, token=None):
    return api.put("/api/skymap", body, token=token or api.admin_token)


def multiorder(sm: skymaps.Skymap, name: str | None = None) -> dict:
    return {"localization_name": name or sm.localization_name, "uniq": sm.uniq.tolist(),
            "probdensity": sm.probdensity.tolist()}


def region_query(name, contour=90, catalog="ZTF_alerts", dateobs=DATEOBS, **query):
    return {"query_type": "skymap", "query": {"skymap": {"localization_name": name, "dateobs": dateobs,
                                                         "contour": contour},
                                              "catalog": catalog, "projection": {"_id": 0, "candid": 1}, **query}}


# --- brute force, independent of the server's code --------------------------------------------

def brute_region(sm: skymaps.Skymap, level: float) -> set[int]:
    """The uniq ids of the level% region: densest first; the threshold cell's density kept whole."""
    orders = np.floor(np.log2(sm.uniq) / 2).astype(int) - 1
    prob = sm.probdensity * 4 * math.pi / (12 * 4.0 ** orders)
    prob = prob / prob.sum()
    i = np.argsort(-sm.probdensity, kind="stable")
    k = min(int(np.searchsorted(np.cumsum(prob[i]), level / 100 - 1e-12)), i.size - 1)
    return set(sm.uniq[(sm.probdensity >= sm.probdensity[i[k]]) & (prob > 0)].tolist())


def brute_inside(sm: skymaps.Skymap, level: float, ra, dec) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    cells = brute_region(sm, level)
    orders = sorted({int(math.floor(math.log2(c) / 2) - 1) for c in cells})
    out = np.zeros(len(ra), dtype=bool)
    for o in orders:
        pix = nested.lonlat_to_healpix(Longitude(np.asarray(ra) % 360, u.deg), Latitude(np.asarray(dec), u.deg), o)
        out |= np.array([int(p) + 4 * 4**o in cells for p in pix])
    return out


def all_alerts(config, programids=None) -> list[dict]:
    flt = {} if programids is None else {"candidate.programid": {"$in": programids}}
    return list(db.get_db(config)["ZTF_alerts"].find(flt, {"candid": 1, "candidate.jd": 1, "candidate.programid": 1,
                                                            "coordinates.radec_geojson": 1}))


def positions(docs):
    lonlat = np.array([d["coordinates"]["radec_geojson"]["coordinates"] for d in docs], dtype=float)
    return lonlat[:, 0] + 180.0, lonlat[:, 1]


# --- routes and messages -------------------------------------------------------------------------

def test_cone_kowalski_messages(api, archive, fresh):
    body = {"dateobs": "2023-06-23T15:42:26", "skymap": {"ra": 90, "dec": 30, "error": 10}, "contours": [90]}
    r = put(api, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "message": "added skymap for 2023-06-23 15:42:26 with contours [90]",
                        "data": {"dateobs": "2023-06-23T15:42:26", "localization_name": "90.00000_30.00000_10.00000",
                                 "contours": [90]}}
    r = put(api, {**body, "contours": [95]})
    assert r.status_code == 200 and r.json()["data"]["contours"] == [90, 95]
    assert r.json()["message"] == "updated skymap for 2023-06-23 15:42:26 to add contours [95]"
    r = put(api, {**body, "contours": "90,95"})
    assert r.status_code == 409
    assert r.json() == {"status": "already_exists", "message": "skymap already exists with the same contours",
                        "data": {"dateobs": "2023-06-23T15:42:26", "localization_name": "90.00000_30.00000_10.00000",
                                 "contours": [90, 95]}}
    r = api.get("/api/skymap?dateobs=2023-06-23T15:42:26&localization_name=90.00000_30.00000_10.00000&contours=90,95",
                token=api.admin_token)
    doc = r.json()["data"]
    assert r.status_code == 200 and doc["dateobs"] == "2023-06-23T15:42:26"
    c90 = doc["contours"]["contour90"]
    assert c90["type"] == "MultiPolygon" and c90["properties"] == {"credible_level": 90}
    ring = np.array(c90["coordinates"][0][0])
    assert (ring[:, 0] >= -180).all() and (ring[:, 0] < 180).all()  # lon - 180
    # the 90% region of a 10-degree Gaussian reaches about 21.5 degrees from (90, 30)
    d = np.degrees(sky.distance_rad(90, 30, ring[:, 0] + 180, ring[:, 1]))
    assert 19 < d.min() and d.max() < 24
    assert doc["contours"]["center"]["type"] == "Point"
    assert 1300 < doc["regions"]["contour90"]["area_deg2"] < 1500
    assert doc["regions"]["contour95"]["probability"] >= 0.95
    r = api.get("/api/skymap?dateobs=2023-06-23T15:42:26&contours=50", token=api.admin_token)
    assert r.status_code == 200 and r.json() == {"status": "error", "message": "skymap exists but is missing contours [50]"}
    r = api.delete("/api/skymap", {"dateobs": "2023-06-23T15:42:26", "localization_name": "90.00000_30.00000_10.00000"},
                   token=api.admin_token)
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "deleted 1 skymap"}
    for r in (api.get("/api/skymap?dateobs=2023-06-23T15:42:26", token=api.admin_token),
              api.delete("/api/skymap", {"dateobs": "2023-06-23T15:42:26", "localization_name": "x"},
                         token=api.admin_token)):
        assert r.status_code == 200 and r.json() == {"status": "error", "message": "no skymap found"}
    r = api.get("/api/skymap", token=api.admin_token)
    assert r.status_code == 200 and r.json() == {"status": "error", "message": "must provide dateobs, triggerid, or alias"}
    assert api.get("/api/skymap?dateobs=2023-06-23T15:42:26").status_code == 401


def test_every_input_form(api, archive, fresh, gw170817, files):
    fits_bytes = skymap_synth.to_fits(gw170817)
    files["files"]["/superevents/S170817a/bayestar.multiorder.fits"] = fits_bytes
    forms = {
        "multiorder": {"skymap": multiorder(gw170817, "bayestar.json")},
        "content": {"skymap": {"localization_name": "bayestar.fits", "content": base64.b64encode(fits_bytes).decode()}},
        "url": {"skymap": {"url": files["url"] + "/superevents/S170817a/bayestar.multiorder.fits"}},
        "polygon": {"skymap": {"localization_name": "ipn_box", "polygon": [[195, -26], [200, -26], [200, -21], [195, -21]]}},
        "ellipse": {"skymap": {"localization_name": "ellipse", "ra": 197.45, "dec": -23.38, "amaj": 4, "amin": 1,
                               "phi": 60}},
    }
    areas = {}
    for form, body in forms.items():
        r = put(api, {"dateobs": DATEOBS, "aliases": ["LVC#S170817a"], "contours": [50, 90], **body})
        assert r.status_code == 200, (form, r.text)
        name = r.json()["data"]["localization_name"]
        doc = api.get(f"/api/skymap?dateobs={DATEOBS}&localization_name={name}", token=api.admin_token).json()["data"]
        areas[form] = {k: v["area_deg2"] for k, v in doc["regions"].items()}
        assert set(doc["contours"]) == {"center", "contour50", "contour90"}
    assert r.json()["data"]["localization_name"] == "ellipse"
    # the same map given three ways has the same regions; the GW170817 90% area is 28 deg^2
    assert areas["multiorder"] == areas["content"] == areas["url"]
    assert 26 < areas["multiorder"]["contour90"] < 30
    # uniform shapes: the region is the whole shape at every level (pi * 4 * 1 = 12.6 deg^2)
    assert areas["ellipse"]["contour50"] == areas["ellipse"]["contour90"] and 12 < areas["ellipse"]["contour90"] < 15
    assert 23 < areas["polygon"]["contour90"] < 27
    stored = fresh.find_one({"localization_name": "bayestar.multiorder.fits"})
    assert stored["meta"]["distmean"] == 40.0 and stored["meta"]["object"] == "GW170817"
    listed = api.get("/api/skymaps", token=api.admin_token).json()
    assert listed["_pagination"]["total"] == 5 and {s["localization_name"] for s in listed["data"]} == {
        "bayestar.json", "bayestar.fits", "bayestar.multiorder.fits", "ipn_box", "ellipse"}


def test_voevent(api, archive, fresh, files, gw170817):
    files["files"]["/S170817a/bayestar.fits.gz"] = __import__("gzip").compress(skymap_synth.to_fits(gw170817))
    lvk = f"""<?xml version="1.0" encoding="UTF-8"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="observation"
  ivorn="ivo://gwnet/LVC#S170817a-2-Initial">
  <What><Param name="GraceID" value="S170817a"/>
    <Group type="GW_SKYMAP" name="bayestar"><Param name="skymap_fits" value="{files['url']}/S170817a/bayestar.fits.gz"/></Group>
  </What>
  <WhereWhen><ObsDataLocation><ObservationLocation><AstroCoords coord_system_id="UTC-FK5-GEO">
    <Time><TimeInstant><ISOTime>2017-08-17T12:41:04.4</ISOTime></TimeInstant></Time></AstroCoords>
  </ObservationLocation></ObsDataLocation></WhereWhen>
</voe:VOEvent>"""
    r = put(api, {"voevent": lvk})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"dateobs": DATEOBS, "localization_name": "bayestar.fits.gz", "contours": [90]}
    assert api.get("/api/skymap?alias=LVC%23S170817a", token=api.admin_token).json()["data"]["aliases"] == ["LVC#S170817a"]
    fermi = """<?xml version="1.0"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" role="observation"
  ivorn="ivo://nasa.gsfc.gcn/Fermi#GBM_Gnd_Pos_2017-08-17T12:41:06.47_524666471_0-000">
  <What><Param name="TrigID" value="524666471"/></What>
  <WhereWhen><ObsDataLocation><ObservationLocation><AstroCoords coord_system_id="UTC-FK5-GEO">
    <Time><TimeInstant><ISOTime>2017-08-17T12:41:06.47</ISOTime></TimeInstant></Time>
    <Position2D><Value2><C1>176.8</C1><C2>-39.8</C2></Value2><Error2Radius>11.6</Error2Radius></Position2D>
  </AstroCoords></ObservationLocation></ObsDataLocation></WhereWhen>
</voe:VOEvent>"""
    r = put(api, {"voevent": fermi, "contours": 90})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["localization_name"] == "176.80000_-39.80000_11.60000"
    doc = api.get("/api/skymap?triggerid=524666471", token=api.admin_token).json()["data"]
    assert doc["aliases"] == ["FERMI#bn170817529"] and doc["triggerid"] == "524666471"
    for bad, message in ((lvk.replace("VOEvent", "Event"), "xml file is not valid VOEvent"),
                         ("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><VOEvent/>", "xml file is not valid VOEvent"),
                         (lvk.replace('role="observation"', 'role="nonsense"'), "role must be one of")):
        r = put(api, {"voevent": bad})
        assert r.status_code == 400 and r.json()["message"].startswith("ValueError: ") and message in r.json()["message"]
    assert fresh.count_documents({}) == 2


def test_bad_input_stores_nothing(api, archive, fresh, files):
    image = io.BytesIO()
    from astropy.io import fits
    fits.PrimaryHDU(np.zeros((32, 32), dtype=np.float32)).writeto(image)
    cases = [
        ({"skymap": {"localization_name": "broken.fits", "content": base64.b64encode(b"SIMPLE  =  broken" * 20).decode()}},
         "ValueError: cannot read the FITS file"),
        ({"skymap": {"localization_name": "image.fits", "content": base64.b64encode(image.getvalue()).decode()}},
         "ValueError: not a HEALPix skymap: no binary table with ORDERING = NUNIQ, NESTED or RING (found: PrimaryHDU 32x32)"),
        ({"skymap": {"localization_name": "e", "ra": 10, "dec": 10, "amaj": -1, "amin": -2, "phi": 0}},
         "ValueError: ellipse semi-axes must be > 0 degrees"),
        ({"skymap": {"ra": 10, "dec": 10, "error": 0}}, "ValueError: skymap.error must be > 0 degrees"),
        ({"skymap": {"ra": 10, "dec": 100, "error": 1}}, "ValueError: skymap.dec must be within"),
        ({"skymap": {"localization_name": "m", "uniq": [4, 5], "probdensity": [1.0]}},
         "ValueError: uniq and probdensity must be lists of the same length"),
        ({"skymap": {"localization_name": "m", "uniq": [4, 16], "probdensity": [1.0, 1.0]}},
         "ValueError: skymap cells overlap"),
        ({"skymap": {"localization_name": "m", "uniq": [4, 5], "probdensity": [-1.0, 1.0]}},
         "ValueError: probdensity must be finite and >= 0"),
        ({"skymap": {"url": files["url"] + "/missing.fits"}}, "ValueError: could not fetch skymap from"),
        ({"skymap": {"url": "file:///etc/passwd"}}, "ValueError: skymap.url must be an http(s) URL"),
        ({"skymap": {"what": 1}}, "ValueError: skymap must be one of"),
        ({}, "ValueError: either skymap dict or voevent is required in the request body"),
        ({"skymap": {"ra": 1, "dec": 1, "error": 1}, "contours": [120]}, "ValueError: contour levels must be whole"),
    ]
    for body, message in cases:
        r = put(api, {"dateobs": DATEOBS, **body})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["status"] == "error" and r.json()["message"].startswith(message), (message, r.json())
    r = put(api, {"skymap": {"ra": 1, "dec": 1, "error": 1}})
    assert r.status_code == 400 and r.json()["message"] == "ValueError: dateobs is required in the request body"
    assert fresh.count_documents({}) == 0


def test_url_that_hangs_times_out(api, archive, fresh, files):
    r = put(api, {"dateobs": DATEOBS, "skymap": {"url": files["hang"] + "/bayestar.fits"}})
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message.startswith(f"ValueError: could not fetch skymap from {files['hang']}/bayestar.fits: timed out")
    assert "limit 2 s" in message, message  # the configured limit, not the client's
    assert fresh.count_documents({}) == 0


@pytest.mark.parametrize("url,refused", [
    ("http://127.0.0.1:27017/x.fits", "loopback address (127.0.0.1)"),
    ("http://localhost/x.fits", "loopback address"),
    ("http://10.1.2.3/x.fits", "private address (10.1.2.3)"),
    ("http://169.254.169.254/latest/meta-data", "private address (169.254.169.254)"),
    ("http://[::1]:8000/x.fits", "loopback address (::1)"),
    ("http://93.184.215.14/x.fits", None),  # a public address passes the check
])
def test_skymap_urls_on_internal_hosts_are_refused_unless_allowed(url, refused):
    """A user must not make the API fetch from the database, the hub's API or a metadata service."""
    import asyncio

    from api.base import APIError
    from api.handlers.skymap import check_public_host

    asyncio.run(check_public_host(url, allow_private=True))  # skymaps.fetch_private_hosts: true
    if refused is None:
        asyncio.run(check_public_host(url, allow_private=False))
        return
    with pytest.raises(APIError) as exc:
        asyncio.run(check_public_host(url, allow_private=False))
    assert exc.value.status == 400 and refused in str(exc.value) and "fetch_private_hosts" in str(exc.value)


# --- the skymap query -----------------------------------------------------------------------------

def test_contour_level_not_found(api, archive, fresh):
    assert put(api, {"dateobs": "2023-06-23T15:42:26", "skymap": {"ra": 90, "dec": 30, "error": 10},
                     "contours": [90]}).status_code == 200
    q = {"query_type": "skymap", "query": {"skymap": {"localization_name": "90.00000_30.00000_10.00000",
                                                      "dateobs": "2023-06-23T15:42:26", "contour": 20},
                                           "catalog": "ZTF_alerts", "filter": {}, "projection": {"_id": 0, "objectId": 1}}}
    r = api.query(q)
    assert r.status_code == 400 and r.json() == {"status": "error",
                                                 "message": "ValueError: Contour level 20 not found in skymap"}
    q["query"]["skymap"]["localization_name"] = "nope"
    assert api.query(q).json()["message"] == "ValueError: Skymap not found"
    q["query"]["skymap"] = {"localization_name": "90.00000_30.00000_10.00000", "contour": 90}
    assert api.query(q).json()["message"] == "ValueError: at least one of dateobs, trigger_id or aliases is required"


def _centred_maps(docs) -> list[tuple[str, skymaps.Skymap]]:
    """Localisations centred on real alerts, sized so each region holds some alerts and misses
    others: GW-like Gaussians (multi-order) and error circles."""
    ra, dec = positions(docs)
    out = []
    for k, i in enumerate((0, len(docs) // 3, len(docs) // 2)):
        d = np.degrees(sky.distance_rad(ra[i], dec[i], ra, dec))
        scale = max(float(np.median(d[d > 0.01])), 0.5)  # half the alerts fall within the median distance
        sm = skymap_synth.gaussian(ra[i], dec[i], scale / 2, scale / 4, 30.0 * k, name=f"gauss{k}", max_order=11,
                                   target_cells=8000)
        out.append((sm.localization_name, sm))
        cone = skymaps.from_cone(ra[i], dec[i], scale / 3)
        out.append((cone.localization_name, cone))
    return out


def test_query_equals_brute_force(api, archive, fresh, config):
    docs = all_alerts(config)
    ra, dec = positions(docs)
    checked = hits = 0
    for name, sm in _centred_maps(docs):
        r = put(api, {"dateobs": DATEOBS, "skymap": multiorder(sm, name), "contours": [50, 90]})
        assert r.status_code == 200, r.text
        for level in (50, 90):
            got = sorted(d["candid"] for d in api.data(region_query(name, level)))
            want = sorted(d["candid"] for d, inside in zip(docs, brute_inside(sm, level, ra, dec)) if inside)
            assert got == want, (name, level)
            checked += 1
            hits += len(got)
    assert checked == 12 and 0 < hits < 12 * len(docs)  # regions that hold some alerts and miss others


def test_query_filter_window_projection_paging(api, archive, fresh, config):
    docs = all_alerts(config)
    name, sm = _centred_maps(docs)[0]
    assert put(api, {"dateobs": DATEOBS, "skymap": multiorder(sm, name)}).status_code == 200
    ra, dec = positions(docs)
    inside = [d for d, k in zip(docs, brute_inside(sm, 90, ra, dec)) if k]
    assert len(inside) >= 2
    jds = sorted(d["candidate"]["jd"] for d in inside)
    t0 = (np.datetime64(DATEOBS) - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "D") + 2440587.5
    window = [jds[0] - t0 - 1e-6, jds[len(jds) // 2] - t0 + 1e-6]
    got = api.data(region_query(name, time_window_days=window))
    assert sorted(d["candid"] for d in got) == sorted(
        d["candid"] for d in inside if t0 + window[0] <= d["candidate"]["jd"] <= t0 + window[1])
    got = api.data(region_query(name, filter={"candidate.jd": {"$gte": jds[1]}}))
    assert sorted(d["candid"] for d in got) == sorted(d["candid"] for d in inside if d["candidate"]["jd"] >= jds[1])
    q = region_query(name, projection={"_id": 0, "candid": 1, "candidate.jd": 1})
    q["kwargs"] = {"sort": [["candidate.jd", -1], ["candid", 1]], "skip": 1, "limit": 1}
    second = sorted(inside, key=lambda d: (-d["candidate"]["jd"], d["candid"]))[1]
    # the position the server asked the database for (for the exact test) is stripped again
    assert api.data(q) == [{"candid": second["candid"], "candidate": {"jd": second["candidate"]["jd"]}}]


def test_query_respects_rights(api, archive, fresh, config):
    """A public-only user gets the programid-1 alerts of the region; the admin also the
    programid-2 copies (same positions as the alerts they copy)."""
    docs = all_alerts(config)
    private = [d for d in docs if d["candidate"]["programid"] == 2]
    assert private
    p_ra, p_dec = positions(private)
    sm = skymaps.from_cone(float(p_ra[0]), float(p_dec[0]), 1.0)
    assert put(api, {"dateobs": DATEOBS, "skymap": {"ra": float(p_ra[0]), "dec": float(p_dec[0]), "error": 1.0}}
               ).status_code == 200
    ra, dec = positions(docs)
    inside = [d for d, k in zip(docs, brute_inside(sm, 90, ra, dec)) if k]
    q = region_query(sm.localization_name)
    admin = sorted(d["candid"] for d in api.data(q))
    user = sorted(d["candid"] for d in api.data(q, token=api.token("sky", "pw")))
    assert admin == sorted(d["candid"] for d in inside)
    assert user == sorted(d["candid"] for d in inside if d["candidate"]["programid"] == 1)
    assert set(admin) - set(user) and set(admin) - set(user) <= {d["candid"] for d in private}
    # the skymaps collection itself stays invisible to users
    r = api.query({"query_type": "find", "query": {"catalog": "skymaps", "filter": {}}}, token=api.token("sky", "pw"))
    assert r.status_code == 403


def test_penquins(api, archive, fresh):
    """penquins 2.4.2 passes the skymap routes through ``api()`` and the query type through query()."""
    from urllib.parse import urlsplit
    from penquins import Kowalski

    u = urlsplit(api.url)
    with Kowalski(username="sky", password="pw", protocol="http", host=u.hostname, port=u.port, timeout=60) as k:
        r = k.api("put", "/api/skymap", data={"dateobs": "2023-06-23T15:42:26",
                                              "skymap": {"ra": 90, "dec": 30, "error": 10}, "contours": [90]})
        assert r["status"] == "success" and r["data"]["localization_name"] == "90.00000_30.00000_10.00000"
        r = k.api("put", "/api/skymap", data={"dateobs": "2023-06-23T15:42:26",
                                              "skymap": {"ra": 90, "dec": 30, "error": 10}, "contours": [90]})
        assert r["status"] == "already_exists"
        r = k.query(query={"query_type": "skymap", "query": {
            "skymap": {"localization_name": "90.00000_30.00000_10.00000", "dateobs": "2023-06-23T15:42:26",
                       "contour": 20}, "catalog": "ZTF_alerts", "filter": {}, "projection": {"_id": 0, "objectId": 1}}})
        assert r["default"] == {"status": "error", "message": "ValueError: Contour level 20 not found in skymap"}
        r = k.query(query={"query_type": "skymap", "query": {
            "skymap": {"localization_name": "90.00000_30.00000_10.00000", "dateobs": "2023-06-23T15:42:26",
                       "contour": 90}, "catalog": "ZTF_alerts", "filter": {}, "projection": {"_id": 0, "objectId": 1}}})
        assert r["default"]["status"] == "success" and isinstance(r["default"]["data"], list)
        r = k.api("get", "/api/skymap?dateobs=2023-06-23T15:42:26&localization_name=90.00000_30.00000_10.00000")
        assert r["status"] == "success" and "contour90" in r["data"]["contours"]
        r = k.api("delete", "/api/skymap", data={"dateobs": "2023-06-23T15:42:26",
                                                 "localization_name": "90.00000_30.00000_10.00000"})
        assert r == {"status": "success", "message": "deleted 1 skymap"}


def test_get_with_moc_matches_brute_force(api, archive, fresh, gw170817, config):
    """The stored MOC (``moc=true``) is the credible region: every cell of the brute-force region
    is in it and it holds no other cell."""
    from mocpy import MOC

    assert put(api, {"dateobs": DATEOBS, "skymap": multiorder(gw170817)}).status_code == 200
    r = api.get(f"/api/skymap?dateobs={DATEOBS}&localization_name={gw170817.localization_name}&moc=true",
                token=api.admin_token)
    region = json_util.loads(r.text)["data"]["regions"]["contour90"]
    moc = skymaps.region_moc(region)
    cells = np.array(sorted(brute_region(gw170817, 90)), dtype=np.int64)
    orders = (np.floor(np.log2(cells) / 2) - 1).astype(np.uint8)
    want = MOC.from_healpix_cells((cells - 4 * 4 ** orders.astype(np.int64)).astype(np.uint64), orders, int(orders.max()))
    assert moc == want
    assert 0.9 <= region["probability"] < 0.901


def test_cli_and_client(api, archive, fresh, config, gw170817, tmp_path):
    """`kowalski skymap` and the notebook client go through the API with a user's token."""
    import subprocess
    import sys

    from kowalski.client import connect
    from tests.api.conftest import ROOT

    path = tmp_path / "GW170817.multiorder.fits"
    path.write_bytes(skymap_synth.to_fits(gw170817))
    token = api.token("sky", "pw")

    def cli(*argv):
        res = subprocess.run([sys.executable, "-m", "kowalski.cli", "skymap", *argv, "--api", api.url, "--token", token],
                             capture_output=True, text=True, cwd=str(ROOT), timeout=300)
        return res.returncode, res.stdout, res.stderr

    code, out, err = cli("add", "--file", str(path), "--contours", "50,90", "--alias", "LVC#S170817a")
    assert code == 0, err
    assert out.startswith(f"added skymap for 2017-08-17 12:41:04.400000 with contours [50, 90]: {path.name}")
    code, out, _ = cli("add", "--file", str(path), "--contours", "90")
    assert code == 0 and out.startswith("skymap already exists with the same contours")
    code, out, _ = cli("list")
    assert code == 0 and path.name in out and "90%: 27." in out
    code, out, err = cli("query", "--alias", "LVC#S170817a", "--name", path.name, "--json")
    assert code == 0 and out.strip() == "[]"  # no sample alert lies in GW170817's region
    code, _, err = cli("query", "--alias", "LVC#S170817a", "--name", path.name, "--contour", "20")
    assert code == 2 and "ValueError: Contour level 20 not found in skymap" in err
    k = connect(api.url, token=token)
    assert k.skymaps().localization_name.tolist() == [path.name]
    moc = k.skymap_moc(path.name, DATEOBS)
    assert skymaps.contains(moc, [197.45, 10.0], [-23.38, 10.0]).tolist() == [True, False]
    assert k.skymap_alerts(path.name, DATEOBS).empty
    code, out, _ = cli("delete", "--dateobs", DATEOBS, "--name", path.name)
    assert code == 0 and out.strip() == "deleted 1 skymap"
    assert fresh.count_documents({}) == 0
