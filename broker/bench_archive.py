"""`kowalski bench archive`: the benchmark archive of N alerts (and a synthetic catalog) that
`kowalski bench api` measures the API on, built by the broker: the real ZTF sample alerts are
ingested through the broker's store path, then replicated with fresh candid/objectId
(``publisher`` marks them synthetic) and positions spread within 1° of the originals, with one aux
document per object; bulk path (prepared documents, ``insert_many``, indexes built after). Kept
between runs; ``--reload`` rebuilds it. The API's benchmark runs this as a command: the API
imports nothing from the broker."""

from __future__ import annotations

import copy
import os
import random
import time

from kowalski import sky
from kowalski.bench import get_bench_subparsers

CATALOG = "bench_catalog"


def _say(msg: str) -> None:
    print(msg, flush=True)


def _ensure_catalog(config, sources: int) -> None:
    """A synthetic catalog around the sample alerts, for the catalog cones (built once, kept)."""
    from broker.stages.crossmatch import load_catalog_index
    if load_catalog_index(config, CATALOG).count != sources:
        from broker.catalogs import synth_catalog
        _say(f"building {CATALOG} with {sources:,} sources (once) ...")
        synth_catalog(config, CATALOG, sources, seed=3, progress=True)  # 2dsphere where queries use it


def load_archive(config, n: int, reload: bool, catalog_sources: int = 100_000) -> None:
    """Make the benchmark database hold n alerts and the catalog ``catalog_sources`` sources."""
    from kowalski import db
    d = db.get_db(config)
    coll = d["ZTF_alerts"]
    have = coll.estimated_document_count() if "ZTF_alerts" in d.list_collection_names() else 0
    if reload or have != n:
        _say(f"loading {n} alerts into database {config['database']['name']!r} (had {have}) ...")
        db.client(config).drop_database(config["database"]["name"])
        from broker.pipeline import ingest_files
        root = config.path("paths.data") / "alerts" / "kowalski" / "ztf_alerts"
        ingest_files(config, "ztf", [root / "20200202", root / "20231012"])
        originals = list(coll.find({}))
        aux = {a["_id"]: a for a in d["ZTF_alerts_aux"].find({})}
        remaining = n - len(originals)
        if remaining < 0:
            raise SystemExit(f"N must be at least {len(originals)} (the real sample alerts)")
        rng = random.Random(42)
        t0 = time.monotonic()
        coll.drop_indexes()  # bulk path: documents first, indexes built once at the end
        k, done, batch, aux_batch, seen = 0, 0, [], [], set()

        def flush():
            hpx = sky.pixels([b["candidate"]["ra"] for b in batch], [b["candidate"]["dec"] for b in batch]).tolist()
            for b, h in zip(batch, hpx):
                b["coordinates"]["healpix"] = h
            coll.insert_many(batch, ordered=False)
            if aux_batch:
                d["ZTF_alerts_aux"].insert_many(aux_batch, ordered=False)
        while done < remaining:
            k += 1
            for orig in originals:
                if done >= remaining:
                    break
                doc = copy.copy(orig)
                doc.pop("_id", None)
                candid = 3 * 10**18 + done
                oid = f"{orig['objectId']}S{k}"  # synthetic object (a new id per copy round)
                ra0, dec0 = orig["candidate"]["ra"], orig["candidate"]["dec"]
                dec = max(-89.9, min(89.9, dec0 + rng.uniform(-1, 1)))
                ra = (ra0 + rng.uniform(-1, 1)) % 360.0
                doc["candid"], doc["objectId"] = candid, oid
                doc["publisher"] = f"kowalski synthetic copy of candid {orig['candid']}"
                # copy round k is k days later: the archive spans years, as a real one does, so a
                # JD window holds one night's alerts, not two thirds of the archive
                doc["candidate"] = {**orig["candidate"], "candid": candid, "ra": ra, "dec": dec,
                                    "jd": orig["candidate"]["jd"] + k}
                doc["coordinates"] = {**orig["coordinates"], "radec_geojson": {"type": "Point", "coordinates": [ra - 180.0, dec]}}
                # (healpix: set per batch in flush)
                batch.append(doc)
                a = aux.get(orig["objectId"])
                if a is not None and oid not in seen:
                    seen.add(oid)
                    aux_batch.append({**a, "_id": oid})
                done += 1
                if len(batch) >= 500:
                    flush()
                    batch, aux_batch = [], []
                    rate = done / (time.monotonic() - t0)
                    _say(f"  {done + len(originals)}/{n} alerts ({rate:.0f}/s, ~{(remaining - done) / rate:.0f} s left)")
        if batch:
            flush()
        t1 = time.monotonic()
        db.ensure_survey(config, "ztf")
        _say(f"loaded {coll.estimated_document_count()} alerts in {time.monotonic() - t0:.0f} s "
             f"(indexes built after, in {time.monotonic() - t1:.0f} s)")
    _ensure_catalog(config, catalog_sources)


def cmd_bench_archive(args) -> int:
    from kowalski.config import load_config

    config = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": args.database})
    load_archive(config, args.alerts, args.reload, args.catalog_sources)
    return 0


def register(subparsers) -> None:
    b = get_bench_subparsers(subparsers).add_parser(
        "archive", help="build the benchmark archive of N alerts and a synthetic catalog (what `bench api` measures on)")
    b.add_argument("-n", "--alerts", type=int, default=2000, help="archived alerts (default 2000)")
    b.add_argument("--catalog-sources", type=int, default=100_000, help="sources of the synthetic catalog")
    b.add_argument("--database", default="kowalski_bench_api", help="database to load (default kowalski_bench_api)")
    b.add_argument("--reload", action="store_true", help="drop and reload the archive even if it holds N alerts")
    b.set_defaults(func=cmd_bench_archive)
