"""FilterRunner: active filters on stored batches -> the durable outbox; in process and inside the
real broker (Kafka -> Dask -> store -> filters -> outbox -> commit) on the real 20231012 alerts.

Each test works in a database of its own (the ``night`` fixture), so its counts hold in any order."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from broker.filters.runner import FilterRunner
from broker.produce import produce
from kowalski import db
from tests.broker.test_broker_kafka import BrokerThread, _wait, broker_config, committed, counts
from tests.conftest import shared_data
from tests.delivery.conftest import NIGHT
LOOSE = [{"$match": {"candidate.drb": {"$gt": 0.5}}},
         {"$addFields": {"annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
         {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}}]
FAILING = [{"$project": {"x": {"$sqrt": -1}}}]
NOT_COMPILING = [{"$matc": {}}]


def add_filter(cfg, filter_id, pipeline, active=True, catalog="ZTF_alerts", **extra):
    now = dt.datetime(2026, 1, 1)
    db.filters_collection(cfg).insert_one({
        "filter_id": filter_id, "group_id": 1, "catalog": catalog, "permissions": [1, 2], "active": active,
        "autosave": False, "auto_followup": {}, "update_annotations": False, "active_fid": "v00001",
        "fv": [{"fid": "v00001", "pipeline": json.dumps(pipeline), "created_at": now}],
        "created_at": now, "last_modified": now, **extra})


@pytest.fixture
def stored(night):
    config = night
    add_filter(config, 1, LOOSE)
    add_filter(config, 2, FAILING)
    add_filter(config, 3, NOT_COMPILING)
    add_filter(config, 4, LOOSE, active=False)
    add_filter(config, 5, LOOSE, catalog="PGIR_alerts")
    add_filter(config, 6, LOOSE[:1], autosave={"active": True, "comment": "saved", "pipeline": json.dumps(
        [{"$match": {"candidate.drb": {"$gt": 0.99}}}]), "ignore_group_ids": [3]},
        auto_followup={"active": True, "allocation_id": 9, "priority_order": "desc", "comment": "go",
                       "payload": {"observation_type": "IFU"},
                       "pipeline": json.dumps([{"$match": {"candidate.magpsf": {"$lt": 19}}}])})
    return config


def test_runner_writes_passing_pairs_once_and_isolates_failures(stored):
    alerts = list(db.get_db(stored)["ZTF_alerts"].find({}))
    runner = FilterRunner(stored, "ztf")
    res = runner.process(alerts)
    assert {f.filter_id for f in runner.filters} == {1, 2, 6}  # active ZTF filters that compile
    outbox = db.filter_outbox(stored, "ztf")
    loose = sum(1 for a in alerts if a["candidate"]["drb"] > 0.5)  # LOOSE, and filter 6's $match
    assert loose == 22  # of the 24 real alerts (a check on the shared data, not on the runner)
    assert outbox.count_documents({"filter_id": 1}) == loose
    assert outbox.count_documents({"filter_id": 6}) == loose
    assert outbox.count_documents({"filter_id": {"$in": [2, 3, 4, 5]}}) == 0
    assert res == {"passed": 2 * loose, "outbox_new": 2 * loose}
    doc = outbox.find_one({"_id": "2475433850015010009:1"})
    assert doc["candid"] == 2475433850015010009 and doc["objectId"] == "ZTF17aadcvhq" and doc["fid"] == "v00001"
    assert set(doc["data"]) == {"candid", "objectId", "annotations"} and doc["autosave"] is False
    # the failing filter is recorded on its document; the non-compiling one too
    f2 = db.filters_collection(stored).find_one({"filter_id": 2})
    assert f2["error_count"] == len(alerts) and "sqrt" in f2["last_error"].lower()
    f3 = db.filters_collection(stored).find_one({"filter_id": 3})
    assert f3["error_count"] >= 1 and "does not compile" in f3["last_error"] and "$matc" in f3["last_error"]
    # autosave / auto_followup results as Kowalski's broker computes them
    saved = list(outbox.find({"filter_id": 6, "autosave": {"$ne": False}}))
    assert saved and all(d["autosave"] == {"comment": "saved", "ignore_group_ids": [3]} for d in saved)
    assert len(saved) == sum(1 for a in alerts if a["candidate"]["drb"] > 0.99)
    fu = [d for d in saved if "auto_followup" in d]
    assert len(fu) == sum(1 for a in alerts if a["candidate"]["drb"] > 0.99 and a["candidate"]["magpsf"] < 19)
    for d in fu:
        af = d["auto_followup"]
        assert af["priority_alias"] == "priority" and af["data"]["payload"]["priority"] == 5
        assert af["data"]["obj_id"] == d["objectId"] and af["data"]["ignore_source_group_ids"] == [3]
        assert af["comment"] == "go (priority: 5)"
    # the same batch again adds nothing
    assert runner.process(alerts) == {"passed": 2 * loose, "outbox_new": 0}
    assert outbox.count_documents({}) == 2 * loose


def test_slow_filter_is_recorded(stored):
    """A filter over the runner's per-alert threshold is recorded on its own document.

    No time limit is asserted: the filter is made ~100x slower than the 1 ms threshold (a $reduce
    over 200,000 numbers per alert, ~0.1 s here), so it is recorded on any machine."""
    slow = [{"$project": {"s": {"$reduce": {"input": {"$range": [0, 200000]}, "initialValue": 0,
                                           "in": {"$add": ["$$value", "$$this"]}}}}}, {"$match": {"s": -1}}]
    add_filter(stored, 50, slow)
    runner = FilterRunner(stored, "ztf")
    runner.slow_ms = 1.0
    assert runner.process(list(db.get_db(stored)["ZTF_alerts"].find({}).limit(4)))["outbox_new"] > 0
    doc = db.filters_collection(stored).find_one({"filter_id": 50})
    assert doc["slow_batches"] == 1 and doc["last_slow_ms_per_alert"] > runner.slow_ms
    assert doc.get("error_count") is None  # slow is not an error
    assert db.filter_outbox(stored, "ztf").count_documents({"filter_id": 50}) == 0


def test_unstorable_output_is_the_filters_error(stored):
    # a key with a NUL byte cannot be stored in BSON: the filter gets the error, the batch goes on
    add_filter(stored, 51, [{"$project": {"_id": 0, "x": {"$literal": {"a\u0000b": 1}}, "candid": 1}}])
    runner = FilterRunner(stored, "ztf")
    alerts = list(db.get_db(stored)["ZTF_alerts"].find({}).limit(2))
    res = runner.process(alerts)
    loose = sum(1 for a in alerts if a["candidate"]["drb"] > 0.5)
    assert loose > 0
    assert res == {"passed": 2 * loose, "outbox_new": 2 * loose}  # filters 1 and 6; 51's outputs are refused
    doc = db.filters_collection(stored).find_one({"filter_id": 51})
    assert doc["error_count"] == 2 and "candid" in doc["last_error"]
    assert db.filter_outbox(stored, "ztf").count_documents({"filter_id": 51}) == 0


def test_runner_reloads_filters(stored):
    runner = FilterRunner(stored, "ztf")
    runner.refresh_s = 0
    alerts = list(db.get_db(stored)["ZTF_alerts"].find({}).limit(3))
    runner.process(alerts)
    assert {f.filter_id for f in runner.filters} == {1, 2, 6}
    db.filters_collection(stored).update_one({"filter_id": 4}, {"$set": {"active": True}})
    runner.process(alerts)
    assert {f.filter_id for f in runner.filters} == {1, 2, 4, 6}
    assert db.filter_outbox(stored, "ztf").count_documents({"filter_id": 4}) == sum(
        1 for a in alerts if a["candidate"]["drb"] > 0.5)


def test_broker_fills_the_outbox_before_committing(config, ztf_topic):
    cfg = broker_config(config, ztf_topic)
    add_filter(cfg, 1, LOOSE)
    add_filter(cfg, 2, FAILING)
    group = f"test-{uuid.uuid4().hex[:8]}"
    produce(cfg["kafka"]["bootstrap_servers"], ztf_topic, [shared_data(NIGHT)], progress=False)
    outbox = db.filter_outbox(cfg, "ztf")
    with BrokerThread(cfg, group):
        _wait(lambda: committed(cfg, group, ztf_topic) == 24, what="offset 24 committed")
        # committed => the outbox is complete
        assert outbox.count_documents({"filter_id": 1}) == 22
        produce(cfg["kafka"]["bootstrap_servers"], ztf_topic, [shared_data(NIGHT)], progress=False)
        _wait(lambda: committed(cfg, group, ztf_topic) == 48, what="offset 48 committed")
    assert counts(cfg) == (24, 24)
    assert outbox.count_documents({}) == 22  # the replayed night duplicated nothing
    assert db.filters_collection(cfg).find_one({"filter_id": 2})["error_count"] == 48
    db.client(cfg).drop_database(cfg["database"]["name"])
