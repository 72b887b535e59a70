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
from pymongo import AsyncMongoClient, MongoClient, UpdateOne  # noqa: F401 - UpdateOne: bulk writes elsewhere
from pymongo.errors import (  # noqa: F401 - BulkWriteError, DuplicateKeyError: caught elsewhere, named here
    AutoReconnect,
    BulkWriteError,
    CollectionInvalid,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from kowalski.config import Config, redact

log = logging.getLogger("kowalski.db")

# The database's failures as the rest of the code catches them, without importing the driver
# (with BulkWriteError, DuplicateKeyError and UpdateOne, imported above for the same reason):
DatabaseError = PyMongoError                          # anything the database or the driver raised
# down or unreachable (AutoReconnect, ServerSelectionTimeoutError and NetworkTimeout are ConnectionFailures)
DatabaseUnavailable = (ServerSelectionTimeoutError, ConnectionFailure, AutoReconnect)
QueryTimeout = (ExecutionTimeout, NetworkTimeout)     # a query past its max_time_ms / socket timeout
QueryFailure = OperationFailure                       # the server refused the operation (``.details``)

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
        # Writes are acknowledged only once journaled (j: true). Without it an acknowledged write
        # can be lost when the database process dies (MongoDB syncs its journal every 100 ms; the
        # fault-injection suite lost the last outbox batch of the embedded server that way), and
        # the broker commits Kafka offsets on the acknowledgement.
        "journal": bool(db.get("journal", True)),
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


def _survey(config: Config, survey: str):
    from kowalski.surveys import get_survey  # the survey definition names its collections

    survey_config(config, survey)  # configured surveys only
    return get_survey(survey, config)


def alerts_collection(config: Config, survey: str) -> str:
    return _survey(config, survey).alerts_collection


def aux_collection(config: Config, survey: str) -> str:
    return _survey(config, survey).aux_collection


def classifications_collection(config: Config, survey: str) -> str:
    return _survey(config, survey).classifications_collection


def system_collections(config: Config) -> set[str]:
    return set(config["collections"].values())


# --- collections and indexes ---------------------------------------------------------------
# Every process that writes ensures, at start, the collections and indexes its guarantees rely on
# (the broker's "no duplicate alerts" is the unique index on the alert id): a new database, a
# container started before `kowalski up`, or a dropped index must not silently weaken them.

class DuplicateIdsError(RuntimeError):
    """A unique index cannot be built because the collection already holds duplicates."""

    def __init__(self, collection: str, field: str, value, fix: str):
        self.collection, self.field, self.value, self.fix = collection, field, value, fix
        super().__init__(f"{collection} holds duplicate {field} values (e.g. {value!r}), so its unique index "
                         f"cannot be built and stored alerts could be duplicated; run `{fix}` "
                         f"(keeps the first of each, then builds the index)")


def embedded(config: Config) -> bool:
    """Whether database.uri points at the embedded server `kowalski up` runs."""
    from urllib.parse import urlsplit

    u = urlsplit(str(config["database"]["uri"]))
    emb = config["database"].get("embedded") or {}
    return u.hostname in ("127.0.0.1", "localhost", "::1") and (u.port or 27017) == int(emb.get("port", 27017))


def positional_mode(config: Config) -> str:
    """How positions are searched on this backend: ``"healpix"`` (indexed pixel ranges, exact check in
    the API) or ``"geo"`` (the 2dsphere index). ``database.positional_index: auto`` picks healpix on
    the embedded server, whose ``$geoWithin`` walks every document, and geo elsewhere."""
    wanted = str(config["database"].get("positional_index", "auto"))
    if wanted in ("healpix", "geo"):
        return wanted
    return "healpix" if embedded(config) else "geo"


def wants_geo_index(config: Config) -> bool:
    """Whether to build 2dsphere indexes: only where queries use them. On the embedded server
    nothing does (and ``$geoWithin``/``$nearSphere`` work without one), while keeping one up to date
    halved its insert rate (measured: 650 vs 1,260 alerts/s in batches of 20)."""
    return positional_mode(config) == "geo"


def _index_models(specs: Iterable, geo: bool = True) -> list[pymongo.IndexModel]:
    models = []
    for spec in specs:
        name, keys = spec[0], spec[1]
        if not geo and any(d == "2dsphere" for _, d in keys):
            continue
        unique = bool(spec[2]) if len(spec) > 2 else False
        key_list = [(str(f), d if isinstance(d, str) else int(d)) for f, d in keys]
        models.append(pymongo.IndexModel(key_list, name=name, unique=unique))
    return models


def _key(spec) -> list:
    return [(f, d if isinstance(d, str) else int(d)) for f, d in spec.items()]


def _satisfies(existing: dict, wanted: dict) -> bool:
    return _key(existing["key"]) == _key(wanted["key"]) and (bool(existing.get("unique")) or not wanted.get("unique"))


def _ensure_collection(database, coll: str, models: list[pymongo.IndexModel], fix: str = "") -> list[str]:
    """Create ``coll`` and the missing or wrong ones of ``models`` (idempotent; two cheap round trips
    when all is in place). An index of the same name but another definition (say a unique index
    re-created without ``unique``) is rebuilt. Raises :class:`DuplicateIdsError` when a unique index
    cannot be built over the documents already there."""
    try:
        have = list(database[coll].list_indexes())
    except OperationFailure:
        have = []
    if not have:  # no collection yet (list_indexes of a missing collection is empty or an error)
        try:
            database.create_collection(coll)
        except CollectionInvalid:  # created concurrently (PyMongo's own check, before the command)
            pass
        except OperationFailure as exc:  # created concurrently (the server's NamespaceExists)
            if exc.code != 48:
                raise
    todo = []
    for m in models:
        want = m.document
        if any(_satisfies(ix, want) for ix in have):
            continue
        for ix in have:  # the same name or the same key with a weaker definition is in the way
            if ix["name"] != "_id_" and (ix["name"] == want["name"] or _key(ix["key"]) == _key(want["key"])):
                log.warning("%s: index %s %s is not %s: rebuilding it", coll, ix["name"], dict(ix["key"]), want)
                database[coll].drop_index(ix["name"])
        todo.append(m)
    if not todo:
        return []
    try:
        return database[coll].create_indexes(todo)
    except OperationFailure as exc:
        if exc.code == 11000:
            details = exc.details or {}
            key = details.get("keyValue") or {}
            field, value = next(iter(key.items()), ("?", "?"))
            raise DuplicateIdsError(coll, field, value, fix or "kowalski db repair") from None
        if exc.code in (85, 86):  # built concurrently by another process
            log.debug("%s: %s", coll, exc)
            return []
        raise


def _healpix_models(database, coll: str, complete: bool = False) -> list[pymongo.IndexModel]:
    """The pixel index, where it is safe: on a new or empty collection, or where it already is. On
    documents without pixel ids (an archive older than them) or with ids at another depth it would
    make cone searches miss documents: `kowalski db migrate` fills them in, then builds it.
    ``complete``: the caller knows every document has its id (skips a scan of the collection)."""
    from kowalski import sky

    model = pymongo.IndexModel([(sky.FIELD, 1)], name=sky.INDEX_NAME)
    names = {ix["name"] for ix in database[coll].list_indexes()}
    if sky.INDEX_NAME in names:
        return [model]
    if any(n.startswith(sky.INDEX_PREFIX) for n in names):
        log.error("%s: HEALPix ids at another depth than %d: run `kowalski db migrate`", coll, sky.DEPTH)
        return []
    if complete or database[coll].find_one({sky.FIELD: {"$exists": False}}, {"_id": 1}) is None:
        return [model]
    log.warning("%s: documents without HEALPix ids; cone searches use the 2dsphere path until "
                "`kowalski db migrate` adds them", coll)
    return []


def ensure_positions_index(config: Config, coll: str, complete: bool = False, geo_index: bool = False) -> list[str]:
    """A catalog's pixel index (see _healpix_models) and, with ``geo_index``, its 2dsphere index
    (building one takes the embedded database ~1 ms per document)."""
    database = get_db(config)
    models = _healpix_models(database, coll, complete)
    if geo_index:
        models.append(pymongo.IndexModel([("coordinates.radec_geojson", "2dsphere")], name="radec_2dsphere"))
    return _ensure_collection(database, coll, models)


def ensure_survey(config: Config, survey: str) -> dict[str, list[str]]:
    """The survey's alerts (unique alert id, query indexes), aux and filter outbox collections."""
    database = get_db(config)
    sc = survey_config(config, survey)
    fix = f"kowalski db repair --survey {survey.lower()}"
    alerts = alerts_collection(config, survey)
    return {
        alerts: _ensure_collection(database, alerts, _index_models(sc.get("indexes", []), wants_geo_index(config))
                                   + _healpix_models(database, alerts), fix),
        aux_collection(config, survey): _ensure_collection(database, aux_collection(config, survey), []),
        filter_outbox(config, survey).name: ensure_outbox_indexes(config, survey),
    }


def ensure_system(config: Config) -> dict[str, list[str]]:
    """users (unique username), filters (unique filter_id), queries, skymaps (unique dateobs +
    localization_name)."""
    database = get_db(config)
    names = config["collections"]
    return {
        names["users"]: _ensure_collection(database, names["users"],
                                           _index_models([["username_unique", [["username", 1]], True]])),
        names["filters"]: _ensure_collection(database, names["filters"], _index_models(
            [["filter_id_unique", [["filter_id", 1]], True], ["catalog_active", [["catalog", 1], ["active", 1]]]])),
        names["queries"]: _ensure_collection(database, names["queries"], []),
        # one skymap per (event time, localization), as Kowalski's config declares
        names["skymaps"]: _ensure_collection(database, names["skymaps"], _index_models(
            [["dateobs_-1_localization_name_1", [["dateobs", -1], ["localization_name", 1]], True]])),
    }


def ensure_indexes(config: Config, surveys: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Every collection and index the project relies on (idempotent). Returns {collection: [created]}."""
    created: dict[str, list[str]] = {}
    for survey in (config["surveys"] if surveys is None else surveys):
        created.update(ensure_survey(config, survey))
    created.update(ensure_system(config))
    log.info("collections and indexes ensured (%d created) on %s/%s", sum(map(len, created.values())),
             redact({"uri": config["database"]["uri"]})["uri"], config["database"]["name"])
    return created


def repair_duplicates(config: Config, survey: str, progress=None) -> dict:
    """Remove repeated alerts (same alert id; the first stored is kept) so the unique index can be
    built, then ensure the survey's indexes. Returns {duplicates_removed, ids_affected, indexes}."""
    database = get_db(config)
    coll = database[alerts_collection(config, survey)]
    id_field = unique_alert_field(config, survey)
    groups = coll.aggregate([
        {"$group": {"_id": f"${id_field}", "ids": {"$push": "$_id"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
    ], allowDiskUse=True)
    removed = affected = 0
    for g in groups:
        extra = sorted(g["ids"], key=lambda x: (str(type(x)), x))[1:]  # ObjectIds sort in insertion order
        removed += coll.delete_many({"_id": {"$in": extra}}).deleted_count
        affected += 1
        if progress:
            progress(affected, removed)
    created = ensure_survey(config, survey)
    log.info("%s: removed %d repeated alerts of %d ids", coll.name, removed, affected)
    return {"collection": coll.name, "duplicates_removed": removed, "ids_affected": affected,
            "indexes_created": created[coll.name]}


def positioned_collections(config: Config) -> list[str]:
    """The alert collections of the configured surveys and every catalog with positions."""
    database = get_db(config)
    alerts = [alerts_collection(config, s) for s in config["surveys"]]
    existing = set(database.list_collection_names())
    skip = system_collections(config) | set(alerts)
    catalogs = sorted(c for c in existing - skip if not c.endswith(("_aux", "_filter_outbox", "_classifications"))
                      and database[c].find_one({"coordinates.radec_geojson": {"$exists": True}}, {"_id": 1}))
    return [c for c in alerts if c in existing] + catalogs


def migrate_positions(config: Config, collections: Iterable[str] | None = None, chunk: int = 2000,
                      progress=None) -> list[dict]:
    """Give every positioned document its HEALPix pixel id, then build the pixel index.
    Resumable: only documents without an id are read (ids at another depth are removed first).
    ``progress(collection, done, total)`` is called after each chunk."""
    from kowalski import sky

    database = get_db(config)
    out = []
    for coll in (list(collections) if collections is not None else positioned_collections(config)):
        c = database[coll]
        stale = [ix["name"] for ix in c.list_indexes()
                 if ix["name"].startswith(sky.INDEX_PREFIX) and ix["name"] != sky.INDEX_NAME]
        if stale:  # ids at another depth: forget them all, then the missing ones are every one
            c.update_many({}, {"$unset": {sky.FIELD: ""}})
            for name in stale:
                c.drop_index(name)
        todo = {sky.FIELD: {"$exists": False}, "coordinates.radec_geojson.coordinates": {"$exists": True}}
        total, done = c.count_documents(todo), 0
        batch: list = []

        def flush():
            lonlat = [d["coordinates"]["radec_geojson"]["coordinates"] for d in batch]
            pix = sky.pixels([lo + 180.0 for lo, _ in lonlat], [la for _, la in lonlat]).tolist()
            c.bulk_write([pymongo.UpdateOne({"_id": d["_id"]}, {"$set": {sky.FIELD: p}}) for d, p in zip(batch, pix)],
                         ordered=False)

        for doc in c.find(todo, {"coordinates.radec_geojson.coordinates": 1}).batch_size(chunk):
            batch.append(doc)
            if len(batch) >= chunk:
                flush()
                done += len(batch)
                batch.clear()
                if progress:
                    progress(coll, done, total)
        if batch:
            flush()
            done += len(batch)
            if progress:
                progress(coll, done, total)
        created = _ensure_collection(database, coll, _healpix_models(database, coll))
        out.append({"collection": coll, "updated": done, "stale_indexes_dropped": stale, "indexes_created": created})
        log.info("%s: %d documents given HEALPix ids (depth %d)", coll, done, sky.DEPTH)
    return out


def unique_alert_field(config: Config, survey: str) -> str:
    """The field of the survey's unique index on its alerts (its alert id, e.g. ``candid``)."""
    for spec in survey_config(config, survey).get("indexes", []):
        if len(spec) > 2 and spec[2]:
            return str(spec[1][0][0])
    raise KeyError(f"survey {survey!r} has no unique index in config (surveys.{survey}.indexes)")


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
    return get_db(config)[_survey(config, survey).outbox_collection]


def ensure_outbox_indexes(config: Config, survey: str) -> list[str]:
    """The outbox's index for due deliveries (idempotent on every backend); returns what was created."""
    return _ensure_collection(get_db(config), filter_outbox(config, survey).name,
                       _index_models([["pending_created", [["pending", 1], ["created_at", 1]]]]))
