"""Repositories: the system collections behind methods named for what they do.

``Users``, ``Filters``, ``Skymaps``, a survey's ``Alerts`` (with its aux and classifications
collections) and its ``Outbox`` each own their collections: names (from config or the survey
definition) and the queries on them; ``Catalogs`` is every other collection, by name (the
cross-match catalogs, and whatever a user's query names). The broker and the CLI use them on
the synchronous database (``db.get_db``), the API on its asynchronous one: every method is one
driver call, so on a synchronous database it returns the result and on an asynchronous one an
awaitable of it (PyMongo's two APIs share method names, ``to_list`` included). Indexes stay in
``kowalski/db.py`` (``ensure_system``, ``ensure_outbox_indexes``, ``ensure_positions_index``),
the one place that makes them.

A method whose answer is a cursor (``Catalogs.aggregate``, ``info``, ``scan_raw``) returns it as
the driver does (awaited first on the asynchronous database; ``scan_raw`` is the broker's only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Users:
    """``collections.users``: one document per user, ``_id`` = username."""

    def __init__(self, database, config):
        self.coll = database[config["collections"]["users"]]

    def get(self, username: str, projection: dict | None = None):
        return self.coll.find_one({"_id": username}, projection)

    def add(self, doc: dict):
        """Insert a new user (``DuplicateKeyError`` when the username is taken)."""
        return self.coll.insert_one(doc)

    def add_if_missing(self, username: str, doc: dict):
        return self.coll.update_one({"_id": username}, {"$setOnInsert": doc}, upsert=True)

    def update(self, username: str, fields: dict):
        return self.coll.update_one({"_id": username}, {"$set": fields})

    def remove(self, username: str):
        return self.coll.delete_one({"_id": username})


class Filters:
    """``collections.filters``: one document per filter (``filter_id``) with its versions (``fv``)."""

    def __init__(self, database, config):
        self.coll = database[config["collections"]["filters"]]

    def get(self, filter_id: int):
        return self.coll.find_one({"filter_id": filter_id})

    def get_by_key(self, key):
        return self.coll.find_one({"_id": key})

    def active(self, catalog: str):
        """The active filters of an alert collection."""
        return self.coll.find({"catalog": catalog, "active": True}).to_list(None)

    def count(self, query: dict):
        return self.coll.count_documents(query)

    def page(self, query: dict, offset: int, limit: int):
        return self.coll.find(query).sort([("filter_id", 1)]).skip(offset).limit(limit).to_list(None)

    def others_with_followup(self, filter_id: int):
        """The other filters that request automatic follow-up (on some allocation)."""
        return self.coll.find({"auto_followup.allocation_id": {"$exists": True},
                               "filter_id": {"$ne": filter_id}}).to_list(None)

    def add(self, doc: dict):
        return self.coll.insert_one(doc)

    def update(self, key, sets: dict, push: dict | None = None):
        change: dict[str, Any] = {"$set": sets}
        if push:
            change["$push"] = push
        return self.coll.update_one({"_id": key}, change)

    def remove(self, key):
        return self.coll.delete_one({"_id": key})

    def record_errors(self, filter_id: int, n: int, message: str):
        """Count a filter's runtime errors and keep the last one on its document."""
        return self.coll.update_one({"filter_id": filter_id}, {
            "$inc": {"error_count": n}, "$set": {"last_error": message[:1000], "last_error_at": utcnow()}})

    def record_slow(self, filter_id: int, ms_per_alert: float, when: dt.datetime):
        """Count a batch on which the filter was slow, so that its owners see it."""
        return self.coll.update_one({"filter_id": filter_id}, {
            "$inc": {"slow_batches": 1}, "$set": {"last_slow_ms_per_alert": round(ms_per_alert, 2), "last_slow_at": when}})


class Skymaps:
    """``collections.skymaps``: one document per (dateobs, localization_name)."""

    def __init__(self, database, config):
        self.coll = database[config["collections"]["skymaps"]]

    def get(self, query: dict, projection: dict | None = None):
        return self.coll.find_one(query, projection)

    def find(self, query: dict, projection: dict | None = None, limit: int | None = None):
        return self.coll.find(query, projection).to_list(limit)

    def count(self):
        return self.coll.count_documents({})

    def page(self, offset: int, limit: int, projection: dict | None = None):
        return (self.coll.find({}, projection).sort([("dateobs", -1), ("localization_name", 1)])
                .skip(offset).limit(limit).to_list(None))

    def add(self, doc: dict):
        return self.coll.insert_one(doc)

    def update(self, key, sets: dict):
        return self.coll.update_one({"_id": key}, {"$set": sets})

    def remove(self, query: dict):
        return self.coll.delete_one(query)


class Alerts:
    """A survey's alerts (``<PREFIX>_alerts``), its objects' aux documents (``<PREFIX>_alerts_aux``)
    and its human/ML classifications (``<PREFIX>_alerts_classifications``). Queries given here are
    the caller's, already restricted by the user's data rights where that applies."""

    def __init__(self, database, config, survey):
        """``survey``: its name, or its definition (a ``Survey``) when the caller holds one."""
        from kowalski.surveys import get_survey

        definition = get_survey(survey, config) if isinstance(survey, str) else survey
        self.alerts = database[definition.alerts_collection]
        self.aux = database[definition.aux_collection]
        self.classifications = database[definition.classifications_collection]

    def find(self, query: dict, projection: dict | None = None, newest_first: bool = False, limit: int = 0):
        cursor = self.alerts.find(query, projection, limit=limit)
        if newest_first:
            cursor = cursor.sort([("candidate.jd", -1)])
        return cursor.to_list(None)

    def find_one(self, query: dict, projection: dict | None = None):
        return self.alerts.find_one(query, projection)

    def aux_of(self, object_ids, projection: dict | None = None):
        """The aux documents of these objects (those that have one)."""
        return self.aux.find({"_id": {"$in": list(object_ids)}}, projection).to_list(None)

    def add(self, docs: list[dict]):
        """Insert alerts, unordered (``BulkWriteError`` lists those already stored: code 11000)."""
        return self.alerts.insert_many(docs, ordered=False)

    def add_aux(self, docs: list[dict]):
        """Insert the aux documents of new objects, unordered (code 11000: one exists already)."""
        return self.aux.insert_many(docs, ordered=False)

    def update_aux(self, operations: list):
        """Apply ``UpdateOne`` operations to aux documents, unordered."""
        return self.aux.bulk_write(operations, ordered=False)

    def classification(self, query: dict):
        return self.classifications.find_one(query)

    def classify(self, operations: list):
        """Upsert/unset labels: ``UpdateOne`` operations keyed on the alert id, unordered."""
        return self.classifications.bulk_write(operations, ordered=False)


class Outbox:
    """A survey's ``<PREFIX>_filter_outbox``: one item per (alert, filter) that passed, with the
    delivery targets still ``pending``, their attempts and the steps done."""

    def __init__(self, database, config, survey: str):
        from kowalski.surveys import get_survey

        self.coll = database[get_survey(survey, config).outbox_collection]

    def add(self, docs: list[dict]):
        """Insert new items, unordered (``BulkWriteError`` lists those already there: code 11000)."""
        return self.coll.insert_many(docs, ordered=False)

    def due(self, target: str, now: dt.datetime, limit: int):
        """Items pending for ``target`` whose next attempt is due, oldest first."""
        return (self.coll.find({"pending": target, f"next_at.{target}": {"$lte": now}})
                .sort([("created_at", 1), ("_id", 1)]).limit(limit).to_list(None))

    def delivered(self, key: str, target: str, now: dt.datetime):
        return self.coll.update_one({"_id": key}, {"$pull": {"pending": target},
                                                   "$set": {f"delivered_at.{target}": now}})

    def failed(self, key: str, target: str, attempts: int, error: str, next_at: dt.datetime,
               gave_up_at: dt.datetime | None = None):
        """Record a failed attempt; ``gave_up_at`` parks the item (kept, visible, no longer pending)."""
        change: dict[str, Any] = {"$set": {f"attempts.{target}": attempts, f"last_error.{target}": error[:1000],
                                           f"next_at.{target}": next_at}}
        if gave_up_at is not None:
            change["$pull"] = {"pending": target}
            change["$set"][f"gave_up.{target}"] = gave_up_at
        return self.coll.update_one({"_id": key}, change)

    def step_done(self, key: str, target: str, step: str):
        return self.coll.update_one({"_id": key}, {"$addToSet": {f"done.{target}": step}})

    def pending_count(self):
        return self.coll.count_documents({"pending": {"$exists": True, "$ne": []}})


class Catalogs:
    """Any collection by name: the catalogs cross-matched with (loaded by ``kowalski catalog``) and
    whatever a user's query names (``api/handlers/queries.py``, which first rewrites the query by
    the user's data rights)."""

    def __init__(self, database):
        self.database = database

    def names(self):
        return self.database.list_collection_names()

    def find(self, name: str, query: dict, projection: dict | None = None, **options):
        return self.database[name].find(query, projection, **options).to_list(None)

    def aggregate(self, name: str, pipeline: list, **options):
        return self.database[name].aggregate(pipeline, **options)

    def count(self, name: str, query: dict, **options):
        return self.database[name].count_documents(query, **options)

    def estimated_count(self, name: str, **options):
        """The collection's size from its metadata (no scan; every document, whatever the rights)."""
        return self.database[name].estimated_document_count(**options)

    def indexes(self, name: str):
        return self.database[name].index_information()

    def stats(self, name: str):
        """``collStats`` (``QueryFailure`` where the server has no such command)."""
        return self.database.command("collStats", name)

    def database_stats(self):
        return self.database.command("dbStats")

    def info(self, name: str):
        """The collection's ``listCollections`` entry (its ``info.uuid`` changes when it is re-created)."""
        return self.database.list_collections(filter={"name": name})

    def add(self, name: str, docs: list[dict]):
        """Insert sources, unordered (``BulkWriteError`` lists those already there: code 11000)."""
        return self.database[name].insert_many(docs, ordered=False)

    def scan_raw(self, name: str, batch_size: int):
        """Every document as raw BSON, in one cursor (the cross-match cache reads a catalog so)."""
        from bson.codec_options import CodecOptions
        from bson.raw_bson import RawBSONDocument

        coll = self.database.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
        return coll.find({}, batch_size=batch_size)

    def drop(self, name: str):
        return self.database[name].drop()
