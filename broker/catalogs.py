"""Catalog collections: `kowalski catalog load` (CSV, FITS, Parquet) and `catalog synth`.

Each catalog is one collection; every document gets `coordinates` {radec_str, radec_geojson}
and the collection a 2dsphere index, so API cone searches and the broker's cross-match see it.
Rows without a valid position are skipped, counted and logged; nothing else is dropped.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from broker.stages.crossmatch import CacheWriter, collection_uuid
from kowalski import db
from kowalski.astro import position_documents, valid_radec
from kowalski.repositories import Catalogs

log = logging.getLogger("kowalski.catalogs")

RA_NAMES = ["ra", "raj2000", "ra_deg", "radeg", "objra", "ra_icrs", "alpha"]
DEC_NAMES = ["dec", "dej2000", "decj2000", "dec_deg", "dedeg", "objdec", "de_icrs", "delta"]
CHUNK = 5000


class CatalogError(Exception):
    pass


def _find_column(columns: list[str], wanted: str | None, names: list[str], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise CatalogError(f"column {wanted!r} not in the file (columns: {', '.join(columns[:30])})")
        return wanted
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise CatalogError(f"no {what} column found (tried {', '.join(names)}); pass --{what}-col")


def _clean(value):
    """Numpy/astropy scalars and arrays -> plain BSON-encodable Python values; NaN -> None."""
    if value is np.ma.masked or isinstance(value, np.ma.core.MaskedConstant):
        return None
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode(errors="replace").strip()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _clean(value.item())
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_table(path: Path) -> tuple[list[str], Iterator[dict], int]:
    """(columns, row iterator, row count) for CSV, FITS(.gz) and Parquet files."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        cols = [c for c in table.column_names if not c.startswith("__index_level")]
        return cols, (dict((k, _clean(v)) for k, v in row.items() if k in cols) for row in table.to_pylist()), table.num_rows
    if name.endswith((".fits", ".fits.gz", ".fit", ".fts")):
        from astropy.table import Table

        table = Table.read(path)
        cols = list(table.colnames)
        return cols, ({c: _clean(row[c]) for c in cols} for row in table), len(table)
    if name.endswith((".csv", ".csv.gz")):
        import pandas as pd

        df = pd.read_csv(path)
        cols = [str(c) for c in df.columns]
        return cols, ({k: _clean(v) for k, v in rec.items()} for rec in df.to_dict("records")), len(df)
    raise CatalogError(f"{path.name}: unsupported format (CSV, FITS or Parquet)")


def _insert(catalogs: Catalogs, name: str, docs: list[dict]) -> int:
    try:
        return len(catalogs.add(name, docs).inserted_ids)
    except db.BulkWriteError as exc:
        dup = [e for e in exc.details.get("writeErrors", []) if e.get("code") == 11000]
        other = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
        if other:
            raise CatalogError(f"database rejected {len(other)} documents: {other[0].get('errmsg')}") from exc
        return exc.details.get("nInserted", len(docs) - len(dup))


def finish_cache(config, name: str, cache: CacheWriter, count: int | None = None) -> None:
    """Publish the broker's cross-match cache written while loading (saves it re-reading the
    collection), unless the collection holds other documents too (then the broker builds it).
    ``count``: the collection's size when known (counting scans the local database's collection)."""
    if count is None:
        count = Catalogs(db.get_db(config)).estimated_count(name)
    if cache.seen == count:
        cache.finish(count, collection_uuid(config, name))
    else:
        cache.abort()
        log.info("%s holds %d documents, %d loaded now: the cross-match cache will be built from the "
                 "collection", name, count, cache.written)


def ensure_catalog_indexes(config, name: str, geo_index: bool | None = None, complete: bool = False) -> None:
    """The HEALPix pixel index cone searches use and the 2dsphere index (``geo_index``; None: where
    the backend's queries use it, db.wants_geo_index); ``complete``: every document was written by
    this version (so has its pixel id)."""
    if geo_index is None:
        geo_index = db.wants_geo_index(config)
    t0 = time.monotonic()
    built = db.ensure_positions_index(config, name, complete, geo_index=geo_index)
    if built:
        log.info("%s: index(es) %s built in %.1f s", name, ", ".join(built), time.monotonic() - t0)


def load_catalog(config, path: Path, name: str, ra_col=None, dec_col=None, id_col=None,
                 progress: bool = True, geo_index: bool | None = None) -> dict:
    """Load a catalog file into collection `name`. Returns {inserted, skipped, rows, seconds}."""
    if name in db.system_collections(config) or name.endswith(("_alerts", "_alerts_aux")):
        raise CatalogError(f"{name!r} is a reserved collection name")
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: no such file")
    t0 = time.monotonic()
    cols, rows, n = read_table(path)
    ra_c = _find_column(cols, ra_col, RA_NAMES, "ra")
    dec_c = _find_column(cols, dec_col, DEC_NAMES, "dec")
    if id_col and id_col not in cols:
        raise CatalogError(f"id column {id_col!r} not in the file")
    catalogs = Catalogs(db.get_db(config))
    inserted = skipped = 0
    batch: list[dict] = []
    positions: list[tuple[float, float]] = []

    def flush() -> int:  # coordinates for the whole chunk at once (HEALPix ids are vectorised)
        ra_dec = np.array(positions, dtype=float).reshape(-1, 2)
        for doc, coords in zip(batch, position_documents(ra_dec[:, 0], ra_dec[:, 1])):
            doc["coordinates"] = coords
        n = _insert(catalogs, name, batch)
        cache.add(batch)
        batch.clear()
        positions.clear()
        return n

    with CacheWriter(config, name) as cache:
        bar = tqdm(total=n, unit="rows", desc=f"loading {name}", disable=not progress)
        for i, row in enumerate(rows):
            ra, dec = row.get(ra_c), row.get(dec_c)
            try:
                ok = bool(valid_radec(float(ra), float(dec)))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                skipped += 1
                log.warning("%s row %d skipped: invalid position ra=%r dec=%r", path.name, i, ra, dec)
            else:
                doc = dict(row)
                doc["_id"] = row[id_col] if id_col else f"{path.stem}_{i}"
                batch.append(doc)
                positions.append((float(ra), float(dec)))
            if len(batch) >= CHUNK:
                inserted += flush()
            bar.update(1)
        if batch:
            inserted += flush()
        bar.close()
        ensure_catalog_indexes(config, name, geo_index)
        finish_cache(config, name, cache)
    return {"catalog": name, "rows": n, "inserted": inserted, "skipped": skipped,
            "seconds": round(time.monotonic() - t0, 2)}


def synth_positions(n: int, centres: list[tuple[float, float]], density_per_deg2: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n sources spread uniformly over small caps around the centres, at the given density.

    Uniform on the sphere inside each cap (not in flat ra/dec), so the density is real.
    """
    k = len(centres)
    per = np.full(k, n // k)
    per[: n % k] += 1
    cap_area = n / k / density_per_deg2  # deg^2
    radius = math.radians(math.sqrt(cap_area / math.pi))
    ras, decs = [], []
    for (cra, cdec), m in zip(centres, per):
        # sample around the pole, then rotate to the centre
        cosr = math.cos(radius)
        z = rng.uniform(cosr, 1.0, m)
        phi = rng.uniform(0, 2 * math.pi, m)
        s = np.sqrt(1 - z**2)
        v = np.stack([s * np.cos(phi), s * np.sin(phi), z])
        a, d = math.radians(cra), math.radians(cdec)
        # rotation taking the pole (0,0,1) to (a, d)
        ry = np.array([[math.sin(d), 0, math.cos(d)], [0, 1, 0], [-math.cos(d), 0, math.sin(d)]])
        rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        x, y, zz = rz @ ry @ v
        ras.append(np.degrees(np.arctan2(y, x)) % 360.0)
        decs.append(np.degrees(np.arcsin(np.clip(zz, -1, 1))))
    return np.concatenate(ras), np.concatenate(decs)


def alert_positions(config, limit: int = 200) -> list[tuple[float, float]]:
    """Positions of the real ZTF sample alerts in ../shared/data (the default synth centres)."""
    import fastavro

    base = config.path("paths.data") / "alerts" / "kowalski" / "ztf_alerts"
    out = []
    for f in sorted(base.glob("*/*.avro"))[:limit]:
        with open(f, "rb") as fh:
            for rec in fastavro.reader(fh):
                out.append((rec["candidate"]["ra"], rec["candidate"]["dec"]))
    if not out:
        raise CatalogError(f"no alerts under {base} to centre the catalog on; pass --around RA,DEC")
    return out


def synth_catalog(config, name: str, n: int, centres: list[tuple[float, float]] | None = None,
                  density_per_deg2: float = 50000.0, seed: int = 0, progress: bool = True,
                  geo_index: bool | None = None) -> dict:
    """A synthetic catalog of n sources at a realistic density (Gaia averages ~45,000/deg²)."""
    if n <= 0:
        raise CatalogError("--sources must be positive")
    centres = centres or alert_positions(config)
    rng = np.random.default_rng(seed)
    ra, dec = synth_positions(n, centres, density_per_deg2, rng)
    mag = 21.0 - rng.exponential(1.5, n)  # more faint than bright sources
    catalogs = Catalogs(db.get_db(config))
    catalogs.drop(name)
    t0 = time.monotonic()
    bar = tqdm(total=n, unit="src", desc=f"synth {name}", disable=not progress)
    inserted = 0
    with CacheWriter(config, name) as cache:
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            coords = position_documents(ra[s:e], dec[s:e])
            docs = [{"_id": i, "ra": float(ra[i]), "dec": float(dec[i]), "mag": round(float(mag[i]), 3),
                     "synthetic": True, "coordinates": coords[i - s]} for i in range(s, e)]
            inserted += _insert(catalogs, name, docs)
            cache.add(docs)
            bar.update(len(docs))
        bar.close()
        ensure_catalog_indexes(config, name, geo_index, complete=True)  # dropped, then all written here
        finish_cache(config, name, cache, count=inserted)  # a fresh collection holds what we inserted
    return {"catalog": name, "inserted": inserted, "centres": len(centres),
            "density_per_deg2": density_per_deg2, "seconds": round(time.monotonic() - t0, 2)}
