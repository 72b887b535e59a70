"""Every writer ensures its own collections and indexes; repeated alerts are refused, then repaired.

Each test works in a database of its own that `kowalski up` (and the ``config`` fixture's
ensure_indexes) never prepared, as an operator's new database or a container would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from bson import ObjectId

from kowalski import db
from kowalski.config import load_config
from tests.conftest import ROOT


@pytest.fixture
def bare(services):
    """A config on a fresh, empty database (no collections, no indexes); dropped afterwards."""
    name = f"kowalski_test_bare_{uuid.uuid4().hex[:8]}"
    cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name})
    yield cfg
    db.client(cfg).drop_database(name)


def _indexes(cfg, coll):
    return {ix["name"]: ix for ix in db.get_db(cfg)[coll].list_indexes()}


def _alerts(cfg):
    return db.get_db(cfg)[db.alerts_collection(cfg, "ztf")]


def test_ensure_creates_everything_then_is_a_no_op(bare):
    created = db.ensure_indexes(bare, ["ztf"])
    assert "candid_unique" in created["ZTF_alerts"] and "pending_created" in created["ZTF_filter_outbox"]
    ix = _indexes(bare, "ZTF_alerts")
    assert ix["candid_unique"].get("unique") is True
    assert {"objectId", "jd", "programid_jd", "healpix_d16"} <= set(ix)
    assert ("radec" in ix) is db.wants_geo_index(bare)  # a 2dsphere index only where queries use it
    assert _indexes(bare, "users")["username_unique"].get("unique") is True
    assert {"ZTF_alerts_aux", "filters", "queries", "skymaps"} <= set(db.get_db(bare).list_collection_names())
    again = db.ensure_indexes(bare, ["ztf"])
    assert again and not any(again.values()), again  # nothing created the second time


@pytest.mark.parametrize("mode,geo", [("geo", True), ("healpix", False)])
def test_the_2dsphere_index_follows_the_positional_mode(services, mode, geo):
    """Built where cones use it (``geo``); not kept up to date for nothing where they use pixels."""
    name = f"kowalski_test_bare_{uuid.uuid4().hex[:8]}"
    cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name,
                               "KOWALSKI_DATABASE__POSITIONAL_INDEX": mode})
    try:
        db.ensure_survey(cfg, "ztf")
        ix = _indexes(cfg, "ZTF_alerts")
        assert ("radec" in ix) is geo and "healpix_d16" in ix
        if geo:
            assert ix["radec"]["key"]["coordinates.radec_geojson"] == "2dsphere"
    finally:
        db.client(cfg).drop_database(name)


def test_a_unique_index_recreated_without_unique_is_rebuilt(bare):
    db.ensure_survey(bare, "ztf")
    _alerts(bare).drop_index("candid_unique")
    _alerts(bare).create_index([("candid", -1)], name="candid_unique")  # same name, not unique
    assert not _indexes(bare, "ZTF_alerts")["candid_unique"].get("unique")
    assert db.ensure_survey(bare, "ztf")["ZTF_alerts"] == ["candid_unique"]
    assert _indexes(bare, "ZTF_alerts")["candid_unique"].get("unique") is True
    _alerts(bare).insert_one({"candid": 7})
    with pytest.raises(Exception) as exc:
        _alerts(bare).insert_one({"candid": 7})
    assert getattr(exc.value, "code", None) == 11000


def _store_repeats(cfg):
    """Alerts stored twice and three times over, as a broker without the unique index did."""
    coll = _alerts(cfg)
    db.get_db(cfg).create_collection(coll.name)
    ids = [ObjectId() for _ in range(7)]  # increasing: the order they were stored in
    docs = [(ids[0], 1, "first"), (ids[1], 2, "first"), (ids[2], 1, "copy"), (ids[3], 3, "first"),
            (ids[4], 1, "copy"), (ids[5], 2, "copy"), (ids[6], 4, "first")]
    coll.insert_many([{"_id": i, "candid": c, "objectId": f"ZTF{c}", "which": w} for i, c, w in docs])
    return ids


def test_repeated_alerts_refuse_the_index_with_the_fix_named(bare):
    _store_repeats(bare)
    with pytest.raises(db.DuplicateIdsError) as exc:
        db.ensure_survey(bare, "ztf")
    assert "kowalski db repair --survey ztf" in str(exc.value) and "ZTF_alerts" in str(exc.value)
    assert "candid_unique" not in _indexes(bare, "ZTF_alerts")


def test_broker_refuses_to_consume_then_repair_keeps_the_first(bare):
    ids = _store_repeats(bare)
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": bare["database"]["name"], "KOWALSKI_LOG_LEVEL": "WARNING"}
    run = [sys.executable, "-m", "kowalski.cli"]
    broker = subprocess.run(run + ["broker", "--survey", "ztf", "--metrics-port", "-1"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert broker.returncode == 1, broker.stderr[-2000:]
    last = broker.stderr.strip().splitlines()[-1]
    assert last.startswith("kowalski: error: ZTF_alerts holds duplicate candid values"), broker.stderr[-2000:]
    assert "kowalski db repair --survey ztf" in last
    assert _alerts(bare).count_documents({}) == 7  # nothing consumed, nothing removed

    repair = subprocess.run(run + ["db", "repair", "--survey", "ztf"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert repair.returncode == 0, repair.stderr[-2000:]
    assert '"duplicates_removed": 3' in repair.stdout and '"ids_affected": 2' in repair.stdout
    kept = {d["candid"]: d for d in _alerts(bare).find()}
    assert sorted(kept) == [1, 2, 3, 4]
    assert {d["_id"] for d in kept.values()} == {ids[0], ids[1], ids[3], ids[6]}  # the first of each
    assert all(d["which"] == "first" for d in kept.values())
    assert _indexes(bare, "ZTF_alerts")["candid_unique"].get("unique") is True
    again = subprocess.run(run + ["db", "repair", "--survey", "ztf"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and '"duplicates_removed": 0' in again.stdout


def test_db_cli_refuses_an_unknown_survey(bare):
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": bare["database"]["name"]}
    res = subprocess.run([sys.executable, "-m", "kowalski.cli", "db", "repair", "--survey", "nosuch"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown survey 'nosuch'" in res.stderr


def test_delivery_and_api_start_ensure_what_they_rely_on(bare):
    from broker.delivery import Delivery
    from tests.api.conftest import start_server, stop_server

    Delivery(bare, "ztf", targets={})
    assert "pending_created" in _indexes(bare, "ZTF_filter_outbox")
    proc, _, _ = start_server(bare, processes=1)  # the real `kowalski api` on the bare database
    try:
        assert _indexes(bare, "users")["username_unique"].get("unique") is True
        assert _indexes(bare, "filters")["filter_id_unique"].get("unique") is True
        assert db.get_db(bare)["users"].count_documents({"username": bare["admin"]["username"]}) == 1
    finally:
        assert stop_server(proc) == 0


def test_writers_starting_together_on_a_new_database_all_succeed(services):
    """Two API replicas (or a broker and an API) started at once on a new database both create its
    collections: the one that loses the race must carry on, not stop (seen with `docker-compose up`
    of two API replicas: "collection filters already exists")."""
    import threading

    for attempt in range(5):
        name = f"kowalski_test_bare_{uuid.uuid4().hex[:8]}"
        cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name})
        start, errors = threading.Barrier(6), []

        def writer():
            start.wait()
            try:
                db.ensure_system(cfg)
                db.ensure_indexes(cfg, ["ztf"])
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(repr(exc))

        threads = [threading.Thread(target=writer) for _ in range(6)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == [], f"attempt {attempt}: {errors}"
            assert db.alerts_collection(cfg, "ztf") in db.get_db(cfg).list_collection_names()
        finally:
            db.client(cfg).drop_database(name)
