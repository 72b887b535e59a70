"""kowalski.client against the real API: DataFrames of alerts and light curves (with the user's
rights), cutouts with a WCS, filter backtests fanned out in slices, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from kowalski.client import KowalskiError, connect
from tests.api.realdata import DEC, RA


@pytest.fixture(scope="module")
def clients(hub_stack):
    name, pw = hub_stack.new_user()
    admin = connect(hub_stack.api_url, username=hub_stack.admin[0], password=hub_stack.admin[1])
    return admin, connect(hub_stack.api_url, username=name, password=pw)


def test_light_curve_kinds_bands_and_rights(clients):
    admin, public = clients
    lc = admin.light_curve("ZTF17aadcvhq")
    assert {"detection", "upper_limit", "forced"} <= set(lc.kind)
    assert set(lc.band) == {"g", "r"} and lc.jd.is_monotonic_increasing
    det = lc[lc.kind == "detection"]
    assert det.magpsf.notna().all() and det.alert.any()
    assert lc[lc.kind == "upper_limit"].magpsf.isna().all() and lc[lc.kind == "upper_limit"].diffmaglim.notna().all()
    # the programid-2 copies' history points are the admin's to see, not a public user's
    assert 2 in set(admin.light_curve("ZTF19abzrhgq").programid)
    assert set(public.light_curve("ZTF19abzrhgq").programid) == {1}


def test_alerts_cone_scores_and_cutout(clients):
    admin, public = clients
    near = public.cone(RA, DEC, 2)
    assert list(near.objectId) == ["ZTF19abzrhgq"] and near.distance_arcsec.max() < 2
    assert "cutoutScience" not in near.columns
    scores = public.scores("ZTF19abzrhgq")
    assert {"acai_h", "bts", "drb"} <= set(scores.columns) and scores.bts.between(0, 1).all()
    image, wcs = public.cutout(int(near.candid[0]), "difference")
    assert image.shape == (63, 63) and np.isfinite(image).any() and wcs.has_celestial
    centre = wcs.pixel_to_world(31, 31)
    assert abs(centre.ra.deg - RA) < 1e-6 and abs(centre.dec.deg - DEC) < 1e-6


def test_backtest_slices_add_up(hub_stack, clients):
    admin, _ = clients
    admin.request("PUT", f"/api/users/{hub_stack.admin[0]}/groups", {"groups": [7]})
    pipeline = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1}}]
    admin.save_filter(7, 7001, pipeline, permissions=[1, 2], active=False)
    days = admin.alert_days(2400000, 2500000)
    fine, s1 = admin.backtest(7001, days.day.min(), days.day.max() + 1, alerts_per_slice=3)
    whole, s2 = admin.backtest(7001, days.day.min(), days.day.max() + 1, alerts_per_slice=10**6)
    assert s1["slices"] > s2["slices"] == len(days)
    assert s1["alerts"] == s2["alerts"] == int(days.alerts.sum()) == hub_stack.archive["n_public"] + 3
    assert sorted(fine.candid) == sorted(whole.candid) and s1["passed"] == len(fine) > 0


def test_clear_errors(hub_stack, clients, monkeypatch):
    _, public = clients
    with pytest.raises(KowalskiError, match="HTTP 403|HTTP 400"):
        public.query("find", {"catalog": "users", "filter": {}})
    with pytest.raises(KowalskiError, match="login refused"):
        connect(hub_stack.api_url, username="nobody-here", password="x")
    monkeypatch.delenv("KOWALSKI_URL", raising=False)
    with pytest.raises(KowalskiError, match="KOWALSKI_URL"):
        connect()
    with pytest.raises(KowalskiError, match="unreachable"):
        connect("http://127.0.0.1:9", token="x")
