"""The repositories (kowalski/repositories.py) on the real database: one class serves the broker's
synchronous database and the API's asynchronous one alike."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from kowalski import db
from kowalski.repositories import Catalogs, Filters, Outbox, Users


def test_one_users_repository_for_sync_and_async(config):
    sync = Users(db.get_db(config), config)
    sync.add({"_id": "repo-alice", "username": "repo-alice", "permissions": {}})
    with pytest.raises(db.DuplicateKeyError):
        sync.add({"_id": "repo-alice", "username": "repo-alice"})

    async def on_the_async_database():
        client = db.async_client(config)
        try:
            users = Users(client[config["database"]["name"]], config)
            before = await users.get("repo-alice", {"permissions": 1})
            await users.update("repo-alice", {"permissions": {"ztf": [2]}})
            return before, await users.get("repo-alice")
        finally:
            await client.close()

    before, after = asyncio.run(on_the_async_database())
    assert before == {"_id": "repo-alice", "permissions": {}}
    assert after["permissions"] == {"ztf": [2]} == sync.get("repo-alice")["permissions"]
    assert sync.remove("repo-alice").deleted_count == 1 and sync.get("repo-alice") is None


def test_filters_and_outbox_queries(config):
    filters = Filters(db.get_db(config), config)
    for i, active in ((901, True), (902, False), (903, True)):
        filters.add({"filter_id": i, "catalog": "ZTF_alerts", "active": active, "fv": []})
    assert sorted(f["filter_id"] for f in filters.active("ZTF_alerts")) == [901, 903]
    assert [f["filter_id"] for f in filters.page({"filter_id": {"$gte": 901}}, 1, 5)] == [902, 903]
    filters.record_errors(901, 3, "x" * 2000)
    doc = filters.get(901)
    assert doc["error_count"] == 3 and len(doc["last_error"]) == 1000

    db.ensure_outbox_indexes(config, "ztf")
    outbox = Outbox(db.get_db(config), config, "ztf")
    now = dt.datetime(2026, 1, 1)
    outbox.add([{"_id": f"{k}:1", "created_at": now + dt.timedelta(seconds=k), "pending": ["skyportal"],
                 "next_at": {"skyportal": now}} for k in range(3)])
    assert [d["_id"] for d in outbox.due("skyportal", now, 2)] == ["0:1", "1:1"]
    outbox.delivered("0:1", "skyportal", now)
    outbox.failed("1:1", "skyportal", 1, "down", now + dt.timedelta(hours=1))
    outbox.failed("2:1", "skyportal", 5, "down", now, gave_up_at=now)  # parked: kept, no longer pending
    outbox.step_done("1:1", "skyportal", "candidate")
    outbox.step_done("1:1", "skyportal", "candidate")
    assert outbox.due("skyportal", now, 10) == [] and outbox.pending_count() == 1
    item = outbox.coll.find_one({"_id": "1:1"})
    assert item["attempts"]["skyportal"] == 1 and item["done"]["skyportal"] == ["candidate"]


def test_catalogs_any_collection_by_name_sync_and_async(config):
    """A catalog loaded, counted, scanned raw, indexed in the database layer and dropped on the
    synchronous database; found, aggregated and counted on the asynchronous one."""
    catalogs = Catalogs(db.get_db(config))
    name = "repo_catalog_test"
    catalogs.drop(name)
    catalogs.add(name, [{"_id": i, "mag": 15.0 + i} for i in range(5)])
    with pytest.raises(db.BulkWriteError) as exc:
        catalogs.add(name, [{"_id": 4, "mag": 0.0}, {"_id": 5, "mag": 20.0}])
    assert [e["code"] for e in exc.value.details["writeErrors"]] == [11000]
    assert catalogs.estimated_count(name) == 6 and catalogs.count(name, {"mag": {"$gt": 17}}) == 3
    assert name in catalogs.names()
    raw = list(catalogs.scan_raw(name, batch_size=2))
    assert sorted(d["_id"] for d in raw) == list(range(6)) and all(hasattr(d, "raw") for d in raw)
    uuid = next(iter(catalogs.info(name)))["info"].get("uuid")

    async def on_the_async_database():
        client = db.async_client(config)
        try:
            adb = Catalogs(client[config["database"]["name"]])
            found = await adb.find(name, {"mag": {"$lt": 17}}, {"_id": 1}, sort=[("_id", 1)])
            cursor = await adb.aggregate(name, [{"$group": {"_id": None, "n": {"$sum": 1}}}])
            return found, await cursor.to_list(None), await adb.count(name, {}), await adb.indexes(name)
        finally:
            await client.close()

    found, grouped, n, indexes = asyncio.run(on_the_async_database())
    assert found == [{"_id": 0}, {"_id": 1}] and grouped[0]["n"] == 6 == n and "_id_" in indexes
    catalogs.drop(name)
    catalogs.add(name, [{"_id": 1}])  # re-created: another collection, another UUID
    assert next(iter(catalogs.info(name)))["info"].get("uuid") != uuid
    catalogs.drop(name)
    assert name not in catalogs.names()
