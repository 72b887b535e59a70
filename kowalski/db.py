"""The one database layer: clients, collection names and indexes.

Everything else in the project reaches the database through this module, so that the same code
runs on the embedded SecantusDB server and on any real MongoDB given by URI. Async services use
PyMongo's own ``AsyncMongoClient`` (Motor reached end of life on 2026-05-14).
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

import pymongo
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from kowalski.config import Config, redact

log = logging.getLogger("kowalski.db")

_clients: dict[tuple, MongoClient] = {}
_lock = threading.Lock()


def _client_kwargs(config: Config, timeout_ms: int | None = None) -> dict:
    db = config["database"]
    return {
        "serverSelectionTimeoutMS": int(timeout_ms or db.get("server_selection_timeout_ms", 5000)),
        # The monitor's heartbeat waits this long; the local (Python) server can be busy for
        # seconds on a big query, and a missed heartbeat cancels every operation in flight.
        "connectTimeoutMS": int(timeout_ms or db.get("connect_timeout_ms", 30000)),
        "tz_aware": False,
        "appname": "kowalski",
    }


def client(config: Config) -> MongoClient:
    """A process-wide sync client per URI (PyMongo pools connections and is thread-safe)."""
    key = (config["database"]["uri"],)
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = MongoClient(config["database"]["uri"], **_client_kwargs(config))
            _clients[key] = c
        return c


def async_client(config: Config) -> AsyncMongoClient:
    """A new async client; create one per event loop and close it on shutdown."""
    return AsyncMongoClient(config["database"]["uri"], **_client_kwargs(config))


def get_db(config: Config):
    return client(config)[config["database"]["name"]]


def close_all() -> None:
    with _lock:
        for c in _clients.values():
            c.close()
        _clients.clear()


def ping(config: Config, timeout: float = 2.0) -> tuple[bool, str]:
    """Protocol-level probe: a `ping` and `buildInfo` round trip."""
    try:
        with MongoClient(config["database"]["uri"], **_client_kwargs(config, int(timeout * 1000))) as c:
            c.admin.command("ping")
            info = c.admin.command("buildInfo")
        return True, f"MongoDB-wire {info.get('version', '?')}"
    except PyMongoError as exc:
        return False, f"{exc.__class__.__name__}: {str(exc).split(',')[0][:160]}"


# --- names --------------------------------------------------------------------------------

def survey_config(config: Config, survey: str) -> dict:
    try:
        return config["surveys"][survey.lower()]
    except KeyError:
        known = ", ".join(config["surveys"])
        raise KeyError(f"unknown survey {survey!r}; configured: {known}") from None


def alerts_collection(config: Config, survey: str) -> str:
    return f"{survey_config(config, survey)['prefix']}_alerts"


def aux_collection(config: Config, survey: str) -> str:
    return f"{survey_config(config, survey)['prefix']}_alerts_aux"


def classifications_collection(config: Config, survey: str) -> str:
    return f"{survey_config(config, survey)['prefix']}_alerts_classifications"


def system_collections(config: Config) -> set[str]:
    return set(config["collections"].values())


# --- indexes ------------------------------------------------------------------------------

def _index_models(specs: Iterable) -> list[pymongo.IndexModel]:
    models = []
    for spec in specs:
        name, keys = spec[0], spec[1]
        unique = bool(spec[2]) if len(spec) > 2 else False
        key_list = [(str(f), d if isinstance(d, str) else int(d)) for f, d in keys]
        models.append(pymongo.IndexModel(key_list, name=name, unique=unique))
    return models


def ensure_indexes(config: Config, surveys: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Create the configured collections and indexes (idempotent). Returns {collection: [index names]}."""
    db = get_db(config)
    existing = set(db.list_collection_names())
    created: dict[str, list[str]] = {}

    def create(coll: str, models: list[pymongo.IndexModel]) -> None:
        if coll not in existing:
            try:
                db.create_collection(coll)
            except OperationFailure as exc:  # created concurrently
                if exc.code != 48:
                    raise
            existing.add(coll)
        # Only create missing indexes: SecantusDB rejects re-creating an identical index,
        # which MongoDB treats as a no-op.
        have = {ix["name"] for ix in db[coll].list_indexes()}
        todo = [m for m in models if m.document["name"] not in have]
        created[coll] = db[coll].create_indexes(todo) if todo else []

    for survey in surveys or config["surveys"]:
        sc = survey_config(config, survey)
        create(alerts_collection(config, survey), _index_models(sc.get("indexes", [])))
        create(aux_collection(config, survey), [])
    names = config["collections"]
    create(names["users"], _index_models([["username_unique", [["username", 1]], True]]))
    create(names["filters"], _index_models([["filter_id_unique", [["filter_id", 1]], True],
                                             ["catalog_active", [["catalog", 1], ["active", 1]]]]))
    create(names["queries"], [])
    create(names["skymaps"], [])
    log.info("indexes ensured on %d collections of %s", len(created),
             redact({"uri": config["database"]["uri"]})["uri"])
    return created


# --- filters --------------------------------------------------------------------------------

def alerts_with_aux(config: Config, survey: str, query: dict, projection: dict | None = None,
                    object_id: str = "objectId", chunk_size: int = 500, limit: int | None = None,
                    newest_first: bool = False):
    """Chunks ``(alerts, {object id: aux doc})`` of archived alerts matching ``query``; the aux
    documents of each chunk are fetched in one query. ``newest_first`` sorts on candidate.jd."""
    d = get_db(config)
    cur = d[alerts_collection(config, survey)].find(query, projection)
    if newest_first:
        cur = cur.sort([("candidate.jd", -1)])
    if limit:
        cur = cur.limit(int(limit))
    chunk: list = []

    def emit():
        ids = list({a.get(object_id) for a in chunk if a.get(object_id) is not None})
        aux = {x["_id"]: x for x in d[aux_collection(config, survey)].find({"_id": {"$in": ids}})} if ids else {}
        return chunk[:], aux

    for a in cur:
        chunk.append(a)
        if len(chunk) >= chunk_size:
            yield emit()
            chunk.clear()
    if chunk:
        yield emit()


def aux_by_ids(config: Config, survey: str, ids, projection: dict | None = None) -> dict:
    """{object id: aux doc} for ``ids`` in one query."""
    ids = list(set(ids))
    if not ids:
        return {}
    return {x["_id"]: x for x in get_db(config)[aux_collection(config, survey)].find({"_id": {"$in": ids}}, projection)}


def filters_collection(config: Config):
    return get_db(config)[config["collections"]["filters"]]


def filter_outbox(config: Config, survey: str):
    return get_db(config)[f"{survey_config(config, survey)['prefix']}_filter_outbox"]


def ensure_outbox_indexes(config: Config, survey: str) -> None:
    """The outbox's index for due deliveries (created once; idempotent on every backend)."""
    coll = filter_outbox(config, survey)
    have = {ix["name"] for ix in coll.list_indexes()} if coll.name in get_db(config).list_collection_names() else set()
    if "pending_created" not in have:
        try:
            coll.create_index([("pending", 1), ("created_at", 1)], name="pending_created")
        except OperationFailure as exc:  # created concurrently
            log.debug("outbox index: %s", exc)
