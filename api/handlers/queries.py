"""``POST /api/queries``: Kowalski's query types, with data rights and time limits.

Request: ``{"query_type": str, "query": {...}, "kwargs": {...}}``; success:
``{"status": "success", "message": "Successfully executed query", "data": ...}``.
Unknown kwargs are ignored as Kowalski does (penquins sends ``save``, ``filter_first``...); known
ones are type-checked. ``limit``, ``skip``, ``sort``, ``projection`` and ``hint`` are honoured by
``find``, ``find_one``, ``count_documents`` (limit/skip/hint), ``cone_search`` and ``near``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import math
import time
from typing import Any

from bson import SON

from api import cones, regions
from api.base import APIError, BaseHandler, authenticated, loads
from api.coords import ANGULAR_UNITS, angle_to_rad, parse_radec, to_geojson
from api.rights import Rights, check_forbidden, is_system_collection
from kowalski import sky, skymaps
from kowalski.repositories import Catalogs, Skymaps

QUERY_TYPES = ("cone_search", "count_documents", "estimated_document_count", "find", "find_one",
               "aggregate", "info", "near", "drop", "skymap")
INFO_COMMANDS = ("catalog_names", "catalog_info", "index_info", "db_info")
MAX_TIME_MS_LIMIT = 24 * 3600 * 1000
GEO_FIELD = cones.GEO_FIELD
PARALLEL_QUERIES = 8  # per request, for cone searches over many objects/catalogs


def _literal(value: Any, what: str) -> Any:
    """Kowalski accepted filters/projections/pipelines as strings too (JSON or Python literals)."""
    text = value.strip()
    try:
        return loads(text)
    except Exception:  # noqa: BLE001 - then try a Python literal, as Kowalski did
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise APIError(400, f"cannot parse {what}: expected an object (or its JSON text)") from None


def parse_object(value: Any, what: str, default: Any = None) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        value = _literal(value, what)
        check_forbidden(value, what)
    if not isinstance(value, dict):
        raise APIError(400, f"{what} must be an object, not {type(value).__name__}")
    return value


def _int(kwargs: dict, key: str, minimum: int = 0) -> int | None:
    v = kwargs.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum or v > 2**62:
        raise APIError(400, f"kwargs.{key} must be an integer >= {minimum}")
    return v


def _sort(kwargs: dict) -> list | None:
    s = kwargs.get("sort")
    if s is None:
        return None
    if isinstance(s, dict):
        s = list(s.items())
    elif isinstance(s, str):
        s = [(s, 1)]
    if not isinstance(s, list):
        raise APIError(400, 'kwargs.sort must be a list of [field, 1|-1] pairs or an object {field: 1|-1}')
    out = []
    for item in s:
        if isinstance(item, str):
            item = (item, 1)
        if (not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str)
                or not (item[1] in (1, -1) and not isinstance(item[1], bool)
                        or isinstance(item[1], dict) and set(item[1]) == {"$meta"})):
            raise APIError(400, f"kwargs.sort: bad item {item!r}; expected [field, 1|-1]")
        out.append((item[0], item[1]))
    return out or None


def _hint(kwargs: dict):
    h = kwargs.get("hint")
    if h is None:
        return None
    if isinstance(h, str):
        return h
    if isinstance(h, dict):
        h = list(h.items())
    if isinstance(h, list) and h and all(isinstance(i, (list, tuple)) and len(i) == 2 and isinstance(i[0], str)
                                         for i in h):
        # an ordered document, the one form find, count and aggregate all take (aggregate
        # passes its hint to the server as given, and the server refuses a list)
        return {a: b for a, b in h}
    raise APIError(400, "kwargs.hint must be an index name or a non-empty list of [field, direction] pairs")


def _cursor_options(base: dict, sort=None, skip=None, limit=None, hint=None) -> dict:
    """``base`` plus the cursor options given (a zero skip or limit means none, as in MongoDB)."""
    opts = dict(base)
    if sort:
        opts["sort"] = sort
    if skip:
        opts["skip"] = skip
    if limit:
        opts["limit"] = limit
    if hint is not None:
        opts["hint"] = hint
    return opts


def max_time_ms(config, kwargs: dict) -> int:
    v = kwargs.get("max_time_ms", config["api"].get("max_time_ms", 300000))
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise APIError(400, "max_time_ms must be int >= 1")
    return min(v, MAX_TIME_MS_LIMIT)


class Query:
    """One request's query, executed with the user's rights."""

    def __init__(self, handler: "QueriesHandler", rights: Rights, query: dict, kwargs: dict, mtm: int):
        self.h = handler
        self.db = handler.db
        self.catalogs = Catalogs(handler.db)
        self.rights = rights
        self.query = query
        self.kwargs = kwargs
        self.mtm = mtm
        self.comment = handler.username

    @contextlib.asynccontextmanager
    async def timed(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.h.db_seconds += time.perf_counter() - t0

    async def catalog(self, name: Any = None, what: str = "query.catalog") -> str:
        if name is None:
            name = self.query.get("catalog")
            if name is None:
                raise APIError(400, "missing query.catalog")
        name = self.rights.check_collection(name, what)
        if name not in await self.h.catalog_names():
            if name not in await self.h.catalog_names(refresh=True):
                raise APIError(400, f"unknown catalog {name}")
        return name

    # --- the find family -----------------------------------------------------------------
    def _aux_pipeline(self, coll, flt, projection, sort, skip, limit) -> list:
        stages: list[dict] = []
        if flt and not self.rights.touches_history(coll, flt):
            stages.append({"$match": flt})
            flt = None
        stages.extend(self.rights.history_stages(coll))
        if flt:
            stages.append({"$match": flt})
        if sort:
            stages.append({"$sort": SON(sort)})
        if skip:
            stages.append({"$skip": skip})
        if limit:
            stages.append({"$limit": limit})
        if projection:
            stages.append({"$project": projection})
        return stages

    async def _find(self, coll: str, flt: dict, projection: dict | None, limit: int | None = None,
                    paged: bool = True) -> list:
        """``paged=False``: every match (the cone path sorts and pages after its exact check)."""
        sort, skip, hint = _sort(self.kwargs), _int(self.kwargs, "skip"), _hint(self.kwargs)
        if limit is None:
            limit = _int(self.kwargs, "limit")
        if not paged:
            sort = skip = limit = hint = None
        if self.rights.kind(coll) == "aux":
            pipeline = self._aux_pipeline(coll, flt, projection, sort, skip, limit)
            opts = _cursor_options({"maxTimeMS": self.mtm, "comment": self.comment}, hint=hint)
            async with self.timed():
                cursor = await self.catalogs.aggregate(coll, pipeline, **opts)
                return await cursor.to_list(None)
        flt = self.rights.restrict_filter(coll, flt)
        opts = _cursor_options({"max_time_ms": self.mtm, "comment": self.comment}, sort, skip, limit, hint)
        async with self.timed():
            return await self.catalogs.find(coll, flt, projection or None, **opts)

    async def find(self):
        coll = await self.catalog()
        flt = parse_object(self.query.get("filter"), "query.filter", {})
        projection = parse_object(self.query.get("projection"), "query.projection", None)
        return await self._find(coll, flt, projection)

    async def find_one(self):
        coll = await self.catalog()
        flt = parse_object(self.query.get("filter"), "query.filter", {})
        projection = parse_object(self.query.get("projection"), "query.projection", None)
        docs = await self._find(coll, flt, projection, limit=1)
        return docs[0] if docs else None

    async def count_documents(self):
        coll = await self.catalog()
        flt = parse_object(self.query.get("filter"), "query.filter", {})
        skip, limit, hint = _int(self.kwargs, "skip"), _int(self.kwargs, "limit"), _hint(self.kwargs)
        if self.rights.kind(coll) == "aux" and self.rights.touches_history(coll, flt):
            pipeline = self._aux_pipeline(coll, flt, None, None, skip, limit) + [{"$count": "n"}]
            opts = _cursor_options({"maxTimeMS": self.mtm, "comment": self.comment}, hint=hint)
            async with self.timed():
                cursor = await self.catalogs.aggregate(coll, pipeline, **opts)
                res = await cursor.to_list(None)
            return res[0]["n"] if res else 0
        opts = _cursor_options({"maxTimeMS": self.mtm, "comment": self.comment}, skip=skip, limit=limit, hint=hint)
        async with self.timed():
            return await self.catalogs.count(coll, self.rights.restrict_filter(coll, flt), **opts)

    async def estimated_document_count(self):
        coll = await self.catalog()
        cond = self.rights.condition(coll)
        async with self.timed():
            if cond is not None:  # the estimate would count alerts this user may not see
                return await self.catalogs.count(coll, cond, maxTimeMS=self.mtm, comment=self.comment)
            return await self.catalogs.estimated_count(coll, maxTimeMS=self.mtm, comment=self.comment)

    async def aggregate(self):
        coll = await self.catalog()
        pipeline = self.query.get("pipeline")
        if isinstance(pipeline, str):
            pipeline = _literal(pipeline, "query.pipeline")
            check_forbidden(pipeline, "query.pipeline")
        if not isinstance(pipeline, list):
            raise APIError(400, "query.pipeline must be a list of stages")
        if not pipeline:
            raise APIError(400, "Pipeline must contain at least one stage")
        pipeline = cones.with_geo_key(self.h.config, self.rights.rewrite_pipeline(coll, pipeline, where="query.pipeline"))
        allow = self.kwargs.get("allowDiskUse", True)
        if not isinstance(allow, bool):
            raise APIError(400, "kwargs.allowDiskUse must be true or false")
        opts = _cursor_options({"maxTimeMS": self.mtm, "comment": self.comment, "allowDiskUse": allow},
                               hint=_hint(self.kwargs))
        async with self.timed():
            cursor = await self.catalogs.aggregate(coll, pipeline, **opts)
            return await cursor.to_list(None)

    # --- positional ----------------------------------------------------------------------
    def _catalog_specs(self) -> dict:
        catalogs = self.query.get("catalogs")
        if not isinstance(catalogs, dict) or not catalogs:
            raise APIError(400, 'query.catalogs must be a non-empty object {catalog: {"filter": {...}, "projection": {...}}}')
        specs = {}
        for name, spec in catalogs.items():
            if spec is None:
                spec = {}
            if not isinstance(spec, dict):
                raise APIError(400, f"query.catalogs.{name} must be an object with optional filter and projection")
            specs[name.strip()] = (
                parse_object(spec.get("filter"), f"query.catalogs.{name}.filter", {}),
                parse_object(spec.get("projection"), f"query.catalogs.{name}.projection", None),
            )
        return specs

    async def _positional(self, radec: Any, max_rad: float, min_rad: float | None = None) -> dict:
        """A cone (``min_rad`` None) or a ``near`` annulus around each position, in each catalog."""
        names, pairs = parse_radec(radec)
        centres = [to_geojson(p) for p in pairs]
        specs = self._catalog_specs()
        modes = {}
        for name in specs:
            coll = await self.catalog(name, "query.catalogs")
            modes[coll] = cones.choose_mode(self.h.config, await cones.index_names(self.h, coll), coll)
        filter_first = bool(self.kwargs.get("filter_first", False))
        sem = asyncio.Semaphore(PARALLEL_QUERIES)
        near = min_rad is not None

        async def geo(coll, flt, projection, centre):
            if near:
                pos = {GEO_FIELD: {"$nearSphere": [centre[0], centre[1]], "$minDistance": min_rad,
                                   "$maxDistance": max_rad}}
            else:
                pos = {GEO_FIELD: {"$geoWithin": {"$centerSphere": [[centre[0], centre[1]], max_rad]}}}
            full = {**flt, **pos} if filter_first else {**pos, **flt}
            async with sem:
                return await self._find(coll, full, projection)

        async def pixels(coll, flt, projection, centre):
            ra, dec = centre[0] + 180.0, centre[1]
            asked, added = cones.with_position(projection)

            async def part(cond):
                async with sem:
                    return await self._find(coll, {**cond, **flt}, asked, paged=False)

            found = [d for docs in await asyncio.gather(*(part(c) for c in cones.pixel_conditions(ra, dec, max_rad)))
                     for d in docs]
            docs = cones.within(found, ra, dec, max_rad, min_rad or 0.0, ordered=near)
            docs = cones.page(docs, None if near else _sort(self.kwargs), _int(self.kwargs, "skip"),
                              _int(self.kwargs, "limit"))
            return [cones.strip(d, added) for d in docs]

        tasks = {(coll, name): (pixels if modes[coll] == "healpix" else geo)(coll, flt, proj, centre)
                 for coll, (flt, proj) in specs.items() for name, centre in zip(names, centres)}
        results = await asyncio.gather(*tasks.values())
        data: dict = {coll: {} for coll in specs}
        for (coll, name), docs in zip(tasks, results):
            data[coll][name] = docs
        return data

    async def cone_search(self):
        oc = self.query.get("object_coordinates")
        if not isinstance(oc, dict):
            raise APIError(400, "query.object_coordinates must be an object with cone_search_radius, "
                                "cone_search_unit and radec")
        if "radec" not in oc:
            raise APIError(400, "missing query.object_coordinates.radec")
        if "cone_search_radius" not in oc:
            raise APIError(400, "missing query.object_coordinates.cone_search_radius")
        radius = angle_to_rad(oc["cone_search_radius"], oc.get("cone_search_unit", "arcsec"), "cone_search_radius")
        if not 0 < radius <= math.pi:
            raise APIError(400, f"cone_search_radius must be > 0 and at most 180 degrees, not "
                                f"{oc['cone_search_radius']!r} {oc.get('cone_search_unit', 'arcsec')}")
        return await self._positional(oc["radec"], radius)

    async def near(self):
        if "radec" not in self.query:
            raise APIError(400, "missing query.radec")
        units = self.query.get("distance_units", "rad")
        if units not in ANGULAR_UNITS:
            raise APIError(400, f"distance_units must be one of {', '.join(ANGULAR_UNITS)}, not {units!r}")
        r1 = angle_to_rad(self.query.get("min_distance", 0), units, "min_distance")
        if self.query.get("max_distance") is None:  # 1 arcmin whatever the units (Kowalski scaled it)
            r2 = math.pi / 180 / 60
        else:
            r2 = angle_to_rad(self.query["max_distance"], units, "max_distance")
        if r2 < r1:
            raise APIError(400, "max_distance must be >= min_distance")
        if r1 < 0 or r2 > math.pi:
            raise APIError(400, "min_distance must be >= 0 and max_distance at most 180 degrees")
        return await self._positional(self.query["radec"], r2, r1)

    async def skymap(self):
        """Documents of ``query.catalog`` inside a stored credible region (pixel ranges, then the
        exact point-in-MOC test), with the catalog's filter, an optional JD window around the
        skymap's dateobs, and the user's data rights; sort/skip/limit after the test."""
        selector, level = regions.skymap_selector(self.query.get("skymap"))
        coll = await self.catalog()
        if sky.INDEX_NAME not in await cones.index_names(self.h, coll):
            raise APIError(400, f"catalog {coll} has no HEALPix pixel index ({sky.INDEX_NAME}): skymap queries need "
                                f"it; an administrator must run `kowalski db migrate`")
        async with self.timed():
            doc = await Skymaps(self.db, self.h.config).get(selector, {"dateobs": 1, f"regions.contour{level}": 1})
        region = regions.region_of(doc, level)
        flt = parse_object(self.query.get("filter"), "query.filter", {})
        window = self.query.get("time_window_days")
        if window is not None:
            field = self.query.get("jd_field", "candidate.jd")
            t0 = regions.jd(doc["dateobs"])
            when = {field: {"$gte": t0 + float(window[0]), "$lte": t0 + float(window[1])}}
            flt = {**flt, **when} if field not in flt and "$and" not in flt else {"$and": [flt, when]}
        projection = parse_object(self.query.get("projection"), "query.projection", None)
        asked, added = cones.with_position(projection)
        sem = asyncio.Semaphore(PARALLEL_QUERIES)

        async def part(cond):
            async with sem:
                full = {**cond, **flt} if sky.FIELD not in flt and "$and" not in flt else {"$and": [cond, flt]}
                return await self._find(coll, full, asked, paged=False)

        found = [d for docs in await asyncio.gather(*(part(c) for c in regions.pixel_conditions(region))) for d in docs]
        moc = await asyncio.to_thread(skymaps.region_moc, region)
        docs = regions.inside(found, moc)
        docs = cones.page(docs, _sort(self.kwargs), _int(self.kwargs, "skip"), _int(self.kwargs, "limit"))
        return [cones.strip(d, added) for d in docs]

    # --- info and admin --------------------------------------------------------------------
    async def info(self):
        command = self.query.get("command")
        if command not in INFO_COMMANDS:
            raise APIError(400, f"command {command} not in {INFO_COMMANDS}")
        if command == "catalog_names":
            names = await self.h.catalog_names(refresh=True)
            # never the system collections, not even for the admin (as Kowalski: penquins routes
            # queries by this list); the admin still queries them by name
            names = [n for n in names if not is_system_collection(self.h.config, n)]
            return sorted(names)[::-1]
        if command == "db_info":
            async with self.timed():
                stats = await self.catalogs.database_stats()
            return {k: v for k, v in stats.items() if k not in ("$clusterTime", "operationTime", "ok")}
        coll = await self.catalog()
        if command == "index_info":
            async with self.timed():
                info = await self.catalogs.indexes(coll)
            return {name: {**spec, "key": [list(k) for k in spec.get("key", [])]} for name, spec in info.items()}
        return await self._catalog_info(coll)

    async def _catalog_info(self, coll: str) -> dict:
        from kowalski.db import QueryFailure as OperationFailure
        stats = None
        async with self.timed():
            try:
                stats = await self.catalogs.stats(coll)
                stats = {k: v for k, v in stats.items() if k not in ("$clusterTime", "operationTime", "ok")}
            except OperationFailure:  # not every MongoDB-wire server has collStats
                indexes = await self.catalogs.indexes(coll)
                stats = {"ns": f"{self.db.name}.{coll}", "nindexes": len(indexes), "indexNames": sorted(indexes)}
            cond = self.rights.condition(coll)
            if cond is not None:
                stats["count"] = await self.catalogs.count(coll, cond, maxTimeMS=self.mtm)
            elif "count" not in stats:
                stats["count"] = await self.catalogs.estimated_count(coll, maxTimeMS=self.mtm)
        return stats

    async def drop(self):
        if not self.rights.is_admin:
            raise APIError(403, "Forbidden")
        coll = await self.catalog()
        if is_system_collection(self.h.config, coll):
            raise APIError(400, f"cannot drop system collection {coll}")
        async with self.timed():
            await self.catalogs.drop(coll)
        self.h.forget_catalogs()
        return None


_validators: dict = {}


def validate_request(qt: str, body: dict) -> None:
    """Check a request against the OpenAPI schema of its query type: wrong types are a 400 that
    names the field (Kowalski's messages kept where clients compare them)."""
    import jsonschema_rs
    from api.openapi import query_schema
    v = _validators.get(qt)
    if v is None:
        v = _validators[qt] = jsonschema_rs.Draft4Validator(query_schema(qt))
    try:
        v.validate(body)
    except jsonschema_rs.ValidationError as exc:
        raise APIError(400, _schema_message(qt, exc)) from None


_WANTED = {"filter": "an object (or its JSON text)", "projection": "an object (or its JSON text)",
           "pipeline": "a non-empty list of stages (or its JSON text)", "hint": "an index name or key list",
           "radec": "{name: [ra, dec]}, [[ra, dec], ...] or an 'ra dec' string", "sort": "[[field, 1|-1], ...] or {field: 1|-1}"}


def _schema_message(qt: str, exc) -> str:
    path = ".".join(str(p) for p in exc.instance_path) or "request"
    last = str(exc.instance_path[-1]) if exc.instance_path else ""
    kind = type(exc.kind).__name__
    if path == "kwargs.max_time_ms":
        return "max_time_ms must be int >= 1"
    if last == "pipeline" and exc.instance == []:
        return "Pipeline must contain at least one stage"
    if path == "query.command":
        return f"command {exc.instance} not in {INFO_COMMANDS}"
    if kind == "Enum":
        return f"{path} must be one of {', '.join(map(str, exc.kind.options))}, not {exc.instance!r}"
    if kind in ("AnyOf", "OneOfNotValid"):
        return f"{path} must be {_WANTED.get(last, 'of another type')}"
    if kind == "Minimum":
        return f"{path} must be >= {exc.kind.limit}, not {exc.instance!r}"
    if kind == "Type":
        names = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer",
                 "number": "a number", "boolean": "true or false"}
        wanted = " or ".join(names.get(t, t) for t in exc.kind.types)
        return f"{path} must be {wanted}, not {type(exc.instance).__name__}"
    return f"{path}: {exc.message}"


class QueriesHandler(BaseHandler):
    async def catalog_names(self, refresh: bool = False) -> list[str]:
        """Collection names, cached per process; refreshed on a miss by the caller."""
        cache = self.state.catalogs
        now = time.monotonic()
        if not refresh and cache.get("names") is not None and cache.get("expires", 0) > now:
            return cache["names"]
        t0 = time.perf_counter()
        names = await Catalogs(self.db).names()
        self.db_seconds += time.perf_counter() - t0
        cache["names"] = set(names)
        cache["expires"] = now + float(self.config["api"].get("catalog_cache_seconds", 10))
        return cache["names"] if not refresh else list(names)

    def forget_catalogs(self) -> None:
        self.state.catalogs.clear()

    @authenticated
    async def post(self):
        """Run a query."""
        body = self.json_object()
        qt = body.get("query_type")
        if qt not in QUERY_TYPES:
            raise APIError(400, f"query_type {qt} not in {QUERY_TYPES}")
        if body.get("query") is None:
            body["query"] = {}
        validate_request(qt, body)
        query = body["query"]
        if not isinstance(query, dict):
            raise APIError(400, f"query must be an object, not {type(query).__name__}")
        kwargs = body.get("kwargs")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise APIError(400, f"kwargs must be an object, not {type(kwargs).__name__}")
        check_forbidden(query, "query")
        check_forbidden(kwargs, "kwargs")
        mtm = max_time_ms(self.config, kwargs)
        rights = Rights(self.config, self.current_user, self.is_admin)
        q = Query(self, rights, query, kwargs, mtm)
        try:
            # the database enforces maxTimeMS; this also bounds a server that would not
            data = await asyncio.wait_for(getattr(q, qt)(), timeout=mtm / 1000.0 + 2.0)
        except asyncio.TimeoutError:
            raise APIError(400, f"ExecutionTimeout: the query exceeded max_time_ms={mtm}; "
                                f"narrow the query or raise max_time_ms") from None
        if qt == "drop":
            self.success("Successfully dropped collection")
        else:
            self.success("Successfully executed query", data)


default_handlers = [
    (r"/api/queries/?", QueriesHandler),
]
