"""`kowalski bench skymap`: upload + contour time of a 3-D multi-order skymap, and the latency of a
90% credible-region query over an archive of N alerts.

1. Loads N small synthetic alerts (default 100,000) into ``kowalski_bench_skymap``: positions
   uniform over the ZTF sky (dec > -30), jd within 5 days after GW170817's time, half of them
   programid 1, with pixel ids and the survey's indexes. Kept between runs; ``--reload`` rebuilds; an interrupted load resumes.
2. Starts ``kowalski api`` against it.
3. Upload: ``PUT /api/skymap`` of the GW170817-like 3-D multi-order FITS (20,000 cells, base64, as
   a client sends a file) with contours [50, 90], deleted and repeated ``--uploads`` times.
4. Query: the ``skymap`` query (90% region, JD window [0, 3] days, candid/objectId) by a
   public-only user, ``--queries`` times from one client, then from 4 concurrent clients.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import time

from kowalski.bench import percentile

def _say(msg: str) -> None:
    print(msg, flush=True)


def load_alerts(config, n: int, reload: bool, t0_jd: float) -> int:
    import math

    import numpy as np

    from kowalski.db import BulkWriteError

    from kowalski import db
    from kowalski.astro import position_documents
    d = db.get_db(config)
    have = d["ZTF_alerts"].estimated_document_count() if "ZTF_alerts" in d.list_collection_names() else 0
    if have == n and not reload:
        return have
    start = 0
    if reload or have > n:
        db.client(config).drop_database(config["database"]["name"])
    else:  # resume an interrupted load: the same seeded alerts, from the last full batch
        start = have // 5000 * 5000
    _say(f"loading {n:,} synthetic alerts into {config['database']['name']!r} (had {have:,}) ...")
    db.ensure_indexes(config)
    rng = np.random.default_rng(17)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(-30)), 1, n)))
    jds = t0_jd + rng.uniform(0, 5, n)
    coords = position_documents(ra, dec)
    t = time.monotonic()
    for lo in range(start, n, 5000):
        batch = []
        for i in range(lo, min(n, lo + 5000)):
            candid = 3_000_000_000_000_000_000 + i
            batch.append({"candid": candid, "objectId": f"ZTF17bench{i:07d}", "publisher": "kowalski bench skymap",
                          "candidate": {"candid": candid, "jd": float(jds[i]), "ra": float(ra[i]), "dec": float(dec[i]),
                                        "programid": 1 + i % 2, "magpsf": 19.0, "drb": 0.9, "fid": 1 + i % 2},
                          "coordinates": coords[i]})
        try:
            d["ZTF_alerts"].insert_many(batch, ordered=False)
        except BulkWriteError as exc:  # some of the batch was stored before the interruption
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        _say(f"  {min(n, lo + 5000):,} / {n:,} ({time.monotonic() - t:.0f} s)")
    return n


def main(args) -> int:
    import requests

    from api.bench import bench_tokens, start_api, stop_api
    from api.regions import jd
    from api.handlers.skymap import parse_dateobs
    from kowalski import skymap_synth
    from kowalski.config import load_config

    env = {**os.environ, "KOWALSKI_DATABASE__NAME": args.database}
    config = load_config(environ=env)
    event = skymap_synth.GW170817
    dateobs = parse_dateobs(event["dateobs"])
    n = load_alerts(config, args.alerts, args.reload, jd(dateobs))
    sm = skymap_synth.published()
    content = base64.b64encode(skymap_synth.to_fits(sm)).decode()
    proc, url = start_api(config, env, args.processes)
    try:
        admin, user = bench_tokens(config, url)
        s = requests.Session()
        put = {"dateobs": dateobs.isoformat(), "contours": [50, 90],
               "skymap": {"localization_name": sm.localization_name, "content": content}}
        sel = {"dateobs": dateobs.isoformat(), "localization_name": sm.localization_name}
        uploads = []
        for _ in range(args.uploads):
            s.delete(url + "/api/skymap", json=sel, headers={"Authorization": admin})
            t = time.perf_counter()
            r = s.put(url + "/api/skymap", json=put, headers={"Authorization": admin}, timeout=300)
            uploads.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"upload failed: {r.status_code} {r.text[:300]}")
        doc = s.get(url + "/api/skymap", params=sel, headers={"Authorization": admin}).json()["data"]
        region = doc["regions"]["contour90"]
        _say(f"\nskymap benchmark: {n:,} archived alerts, {args.processes} API process(es), GW170817-like 3-D "
             f"multi-order map ({sm.uniq.size:,} cells, orders {int(sm.orders.min())}-{int(sm.orders.max())}, "
             f"{len(content) / 1e6:.1f} MB base64)")
        _say(f"upload + contours [50, 90]: p50 {percentile(uploads, 50):.2f} s, max {max(uploads):.2f} s "
             f"over {len(uploads)} uploads (90% region {region['area_deg2']:.1f} deg2, {region['n_ranges']} MOC ranges)")
        q = {"query_type": "skymap", "query": {"skymap": {**sel, "contour": 90}, "catalog": "ZTF_alerts",
                                               "time_window_days": [0, 3],
                                               "projection": {"_id": 0, "candid": 1, "objectId": 1}}}

        def one(session) -> tuple[float, int]:
            t = time.perf_counter()
            r = session.post(url + "/api/queries", json=q, headers={"Authorization": user}, timeout=120)
            if r.status_code != 200:
                raise SystemExit(f"query failed: {r.status_code} {r.text[:300]}")
            return (time.perf_counter() - t) * 1000, len(r.json()["data"])

        for clients in (1, 4):
            sessions = [requests.Session() for _ in range(clients)]
            per = max(1, args.queries // clients)
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                results = [f.result() for f in [pool.submit(lambda k: [one(sessions[k]) for _ in range(per)], k)
                                                for k in range(clients)]]
            times = [t for rs in results for t, _ in rs]
            found = results[0][0][1]
            _say(f"90% region query ({clients} client(s), {len(times)} queries, {found} alerts returned, public "
                 f"user): p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms")
    finally:
        stop_api(proc)
    return 0
