"""Cross-match alerts against configured catalogs, from memory, on the Dask workers.

Why not one database cone search per catalog per alert (what Kowalski does): the local
database answers an indexed 2" cone in ~25 ms (more on big catalogs), and even fetching the
matched documents by ``_id`` costs it ~1 ms each under no load (~20 ms per alert measured under
the broker's load on 1e6-source catalogs), which made this stage the broker's bottleneck.
So each catalog is cached on disk once, in ``var/cache/xmatch/<db>.<catalog>/``:

* ``ra.npy``/``dec.npy``: positions, matched with a KD-tree of unit vectors (scipy cKDTree);
  candidates from the tree (chord radius padded by a hair) are confirmed with the exact
  haversine distance, so the result equals a database ``$geoWithin/$centerSphere`` cone;
* ``docs.bson`` + ``offsets.npy``: every document's raw BSON, memory-mapped, so the worker
  processes share one copy through the page cache and a match costs one ``bson.decode``;
* ``meta.json``: format version, the collection's UUID and its document count when cached.

``kowalski catalog load``/``synth`` write the cache while inserting; otherwise it is built from
one pass over the collection. Staying current without counting on the hot path: the local
database answers a count (even ``estimated_document_count``) by scanning the collection, ~24 s
for 1e6 documents, so the workers never count. Every ``refresh_s`` they check two cheap things:
the cache's ``meta.json`` (a reload or rebuild replaced the folder: reopen it) and the
collection's UUID (dropped and re-created: rebuild). Documents appended to a catalog by another
tool are caught by :func:`verify_catalogs`, which the broker runs once in the background at
start (and ``kowalski catalog cache NAME`` on demand); an in-place edit that keeps the count
needs ``kowalski catalog cache NAME``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Iterable

import bson
import numpy as np
from bson.raw_bson import RawBSONDocument
from scipy.spatial import cKDTree

from kowalski import db
from kowalski.repositories import Catalogs

log = logging.getLogger("kowalski.broker.crossmatch")

CACHE_FORMAT = 3


def radec_to_xyz(ra_deg, dec_deg) -> np.ndarray:
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def haversine_rad(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _geojson_lonlat(doc) -> tuple[float, float] | None:
    try:
        lon, lat = doc["coordinates"]["radec_geojson"]["coordinates"][:2]
        return float(lon), float(lat)
    except (KeyError, TypeError, ValueError, IndexError):
        return None  # a document without a position cannot match a cone search either


def cache_path(config, name: str) -> Path:
    return config.var_dir / "cache" / "xmatch" / f"{config['database']['name']}.{name}"


def collection_uuid(config, name: str) -> str | None:
    """The collection's UUID (hex), None if it does not exist: changes when it is re-created."""
    for info in Catalogs(db.get_db(config)).info(name):
        uuid = (info.get("info") or {}).get("uuid")
        return uuid.hex() if uuid is not None else ""
    return None


def _stamp(folder: Path) -> tuple:
    st = (folder / "meta.json").stat()
    return st.st_ino, st.st_mtime_ns


class CatalogIndex:
    """One catalog's cached positions and documents (see the module docstring)."""

    def __init__(self, name: str, ra: np.ndarray, dec: np.ndarray, offsets: np.ndarray, blob, count: int,
                 uuid: str | None = None, stamp: tuple = ()):
        self.name, self.ra, self.dec, self.offsets, self.blob, self.count = name, ra, dec, offsets, blob, count
        self.uuid, self.stamp = uuid, stamp
        self._tree: cKDTree | None = None

    @classmethod
    def open(cls, folder: Path, name: str) -> "CatalogIndex":
        stamp = _stamp(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"cache format {meta.get('format')} (want {CACHE_FORMAT})")
        offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        blob = np.memmap(folder / "docs.bson", dtype=np.uint8, mode="r") if offsets[-1] else b""
        return cls(name, np.load(folder / "ra.npy"), np.load(folder / "dec.npy"), offsets, blob, int(meta["count"]),
                   meta.get("uuid"), stamp)

    @property
    def tree(self) -> cKDTree | None:
        if self._tree is None and len(self.ra):
            self._tree = cKDTree(radec_to_xyz(self.ra, self.dec))
        return self._tree

    def doc(self, row: int) -> dict:
        return bson.decode(bytes(self.blob[self.offsets[row]:self.offsets[row + 1]]))

    def query(self, ra: np.ndarray, dec: np.ndarray, radius_rad: float) -> list[np.ndarray]:
        """Rows within radius of each position, nearest first (exact, haversine-confirmed)."""
        if self.tree is None or len(ra) == 0:
            return [np.empty(0, dtype=int) for _ in range(len(ra))]
        chord = 2 * math.sin(min(radius_rad, math.pi) / 2) * (1 + 1e-9) + 1e-15
        cands = self.tree.query_ball_point(radec_to_xyz(ra, dec), r=chord)
        out = []
        for i, rows in enumerate(cands):
            rows = np.asarray(rows, dtype=int)
            if len(rows):
                d = haversine_rad(ra[i], dec[i], self.ra[rows], self.dec[rows])
                keep = d <= radius_rad
                rows = rows[keep][np.argsort(d[keep], kind="stable")]
            out.append(rows)
        return out


class CacheWriter:
    """Streams a catalog's documents into its cache folder; ``finish`` makes it visible atomically."""

    def __init__(self, config, name: str):
        self.final = cache_path(config, name)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.with_name(f"{self.final.name}.tmp{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self._docs = open(self.tmp / "docs.bson", "wb")
        self._offsets, self._lon, self._lat = [0], [], []
        self.seen = 0  # documents given, with or without a position

    @property
    def written(self) -> int:
        return len(self._lon)

    def add(self, docs: Iterable) -> None:
        """Documents as dicts or RawBSONDocument (as stored: with their ``_id``)."""
        for d in docs:
            self.seen += 1
            lonlat = _geojson_lonlat(d)
            if lonlat is None:
                continue
            raw = d.raw if isinstance(d, RawBSONDocument) else bson.encode(d)
            self._docs.write(raw)
            self._offsets.append(self._offsets[-1] + len(raw))
            self._lon.append(lonlat[0])
            self._lat.append(lonlat[1])

    def finish(self, count: int, uuid: str | None) -> None:
        self._docs.close()
        lon = np.asarray(self._lon, dtype=float)
        np.save(self.tmp / "ra.npy", (lon + 180.0) % 360.0)  # radec_geojson lon = ra - 180
        np.save(self.tmp / "dec.npy", np.asarray(self._lat, dtype=float))
        np.save(self.tmp / "offsets.npy", np.asarray(self._offsets, dtype=np.int64))
        (self.tmp / "meta.json").write_text(json.dumps({"format": CACHE_FORMAT, "count": int(count), "uuid": uuid}))
        old = self.final.with_name(self.final.name + f".old{os.getpid()}")
        if self.final.exists():
            self.final.rename(old)
        self.tmp.rename(self.final)
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        self._docs.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp.exists():  # neither finished nor aborted: a load that failed midway
            self.abort()


def build_cache(config, name: str, attempts: int = 3) -> int:
    """Cache a catalog from one pass over its collection (raw BSON, no decoding).

    One cursor, not ``_id``-range pages: the local database scans the whole collection for every
    range query (a 20,000-document page of a 1e6 catalog took it ~60 s), while a plain cursor
    streams ~70,000 documents/s after a ~40 s start. A cursor cancelled midway starts over.
    """
    catalogs = Catalogs(db.get_db(config))
    for attempt in range(1, attempts + 1):
        t0 = time.monotonic()
        uuid = collection_uuid(config, name)
        writer = CacheWriter(config, name)
        try:
            for chunk in _chunks(catalogs.scan_raw(name, batch_size=10_000), 10_000):
                writer.add(chunk)
        except db.DatabaseError as exc:
            writer.abort()
            if attempt == attempts:
                raise
            log.warning("xmatch: reading %s failed (%s); starting over", name, exc)
            continue
        # the pass itself is the count (a cache of a collection being written to is stale anyway)
        writer.finish(writer.seen, uuid)
        log.info("xmatch: cached %d documents of %s in %.1f s", writer.written, name, time.monotonic() - t0)
        return writer.written
    raise AssertionError("unreachable")


def _chunks(it, n):
    chunk = []
    for x in it:
        chunk.append(x)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_catalog_index(config, name: str, count: int | None = None) -> CatalogIndex:
    """A catalog's index from its cache, (re)built when missing, unreadable, or made for another
    incarnation of the collection (UUID) or, when ``count`` is given, another document count."""
    uuid = collection_uuid(config, name)
    folder = cache_path(config, name)
    for build in (False, True):
        if build:
            build_cache(config, name)
        try:
            idx = CatalogIndex.open(folder, name)
        except FileNotFoundError:
            continue
        except Exception as exc:  # corrupt or older-format cache: rebuild it
            log.warning("xmatch cache %s unusable (%s); rebuilding", folder, exc)
            continue
        if idx.uuid == uuid and (count is None or idx.count == count):
            return idx
        log.info("xmatch cache of %s is stale (uuid %s/%s, count %s/%s); rebuilding", name, idx.uuid, uuid,
                 idx.count, count)
    raise RuntimeError(f"xmatch: could not cache catalog {name}")


def verify_catalogs(config, survey: str) -> dict[str, int]:
    """Count each configured catalog (slow on the local database: a scan) and rebuild the caches
    that hold another number of documents; running workers pick the new cache up by itself.
    Returns {catalog: documents}."""
    out = {}
    for name in ((config.get("crossmatch") or {}).get(survey.lower()) or {}):
        t0 = time.monotonic()
        count = Catalogs(db.get_db(config)).estimated_count(name)
        out[name] = load_catalog_index(config, name, count=count).count
        log.info("xmatch: %s verified (%d documents) in %.1f s", name, count, time.monotonic() - t0)
    return out


class CrossMatcher:
    """Matches batches of alert documents against the catalogs configured for a survey.

    Config: ``crossmatch.<survey>.<catalog>: {radius_arcsec, projection, max_results}``.
    Call it with a list of alert documents; it returns one {catalog: [matches]} per alert,
    matches sorted by distance, each with ``coordinates.distance_arcsec``. ``projection`` is a
    MongoDB projection applied to the cached documents (by the filter engine's ``$project``).
    """

    def __init__(self, config, survey: str, refresh_s: float = 60.0):
        self.config = config
        self.catalogs: dict = dict((config.get("crossmatch") or {}).get(survey.lower()) or {})
        self.refresh_s = refresh_s
        self._indexes: dict[str, CatalogIndex] = {}
        self._checked: dict[str, float] = {}
        self._projectors = {name: _projector((spec or {}).get("projection")) for name, spec in self.catalogs.items()}

    def _index(self, name: str) -> CatalogIndex:
        now = time.monotonic()
        idx = self._indexes.get(name)
        if idx is None:
            idx = self._indexes[name] = load_catalog_index(self.config, name)
            self._checked[name] = now
        elif now - self._checked.get(name, 0) > self.refresh_s:
            self._checked[name] = now
            folder = cache_path(self.config, name)
            try:
                replaced = _stamp(folder) != idx.stamp  # reloaded or rebuilt by another process
            except OSError:
                replaced = True
            try:
                recreated = collection_uuid(self.config, name) != idx.uuid
            except db.DatabaseError as exc:  # keep matching with what we have; the store step will pause
                log.warning("xmatch: cannot check %s for changes (%s); using the cached copy", name, exc)
                return idx
            if replaced or recreated:
                idx = self._indexes[name] = load_catalog_index(self.config, name)
                log.info("xmatch: %s reopened (%d documents)", name, idx.count)
        return idx

    def warm(self, trees: bool = True) -> None:
        """Load (and if needed build) every catalog's cache now, not on the first alert."""
        for name in self.catalogs:
            idx = self._index(name)
            if trees:
                idx.tree  # noqa: B018 (builds it)

    def __call__(self, alerts: list[dict]) -> list[dict]:
        out: list[dict] = [{} for _ in alerts]
        if not alerts or not self.catalogs:
            return out
        ra = np.array([a["candidate"]["ra"] for a in alerts], dtype=float)
        dec = np.array([a["candidate"]["dec"] for a in alerts], dtype=float)
        for name, spec in self.catalogs.items():
            spec = spec or {}
            radius = math.radians(float(spec.get("radius_arcsec", 2.0)) / 3600.0)
            max_results = int(spec.get("max_results", 100))
            idx = self._index(name)
            project = self._projectors[name]
            for i, rows in enumerate(idx.query(ra, dec, radius)):
                matches = []
                for j in rows[:max_results]:
                    d = idx.doc(j)
                    if project is not None:
                        d = project(d)
                    coords = dict(d.get("coordinates") or {})
                    sep = haversine_rad(ra[i], dec[i], idx.ra[j], idx.dec[j])
                    coords["distance_arcsec"] = round(float(np.degrees(sep) * 3600), 2)
                    d["coordinates"] = coords
                    matches.append(d)
                out[i][name] = matches
        return out


def _projector(projection: dict | None):
    """A MongoDB projection as a function of one document (None: whole documents).

    An inclusion projection always keeps ``_id`` and the position, as the matches carry their
    distance under ``coordinates``."""
    if not projection:
        return None
    from mql import compile_pipeline

    inclusion = any(bool(v) for k, v in projection.items() if k != "_id")
    if inclusion:
        projection = {**projection, "_id": 1, "coordinates.radec_geojson": 1}
    pipeline = compile_pipeline([{"$project": projection}])
    return lambda doc: pipeline.run([doc], copy=False)[0]
