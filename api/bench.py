"""`kowalski bench api`: latency and throughput of the API on an archive of N alerts.

1. Has the broker's `kowalski bench archive` load N alerts into a benchmark database (default
   ``kowalski_bench_api``; broker/bench_archive.py says how). Kept between runs; ``--reload``
   rebuilds it.
2. Starts ``kowalski api`` on a free port against it and logs in as a public-only user, so every
   query pays for the data-rights rewriting.
3. For each scenario, 16 concurrent clients (one asyncio loop, keep-alive connections) send
   ``--requests`` requests; prints p50/p95/p99 latency, requests/s, and the server's own split
   (``Server-Timing``: time waiting for the database vs total time in the server), plus the same
   query sent straight to the database by one client, for reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kowalski.bench import percentile

SCENARIOS = ("find_objectid", "cone_2arcsec", "cone_60arcsec", "cone_2arcsec_catalog", "cone_60arcsec_catalog",
             "count", "aggregate", "cutout_png")
CATALOG = "bench_catalog"  # built by `kowalski bench archive` (broker/bench_archive.py)
NO_CUTOUTS = {"_id": 0, "cutoutScience": 0, "cutoutTemplate": 0, "cutoutDifference": 0}


def _say(msg: str) -> None:
    print(msg, flush=True)


def load_archive(config, env: dict, n: int, reload: bool, catalog_sources: int) -> dict:
    """The benchmark archive, built by the broker's `kowalski bench archive` (a command: the API
    imports nothing from the broker); returns sample ids and positions to query."""
    from kowalski import db
    cmd = [sys.executable, "-m", "kowalski.cli", "bench", "archive", "-n", str(n), "--catalog-sources",
           str(catalog_sources), "--database", config["database"]["name"]] + (["--reload"] if reload else [])
    if subprocess.run(cmd, env=env, cwd=str(config.root)).returncode != 0:
        raise SystemExit("kowalski bench archive failed (see above)")
    sample = list(db.get_db(config)["ZTF_alerts"].aggregate([
        {"$sample": {"size": 500}},
        {"$project": {"_id": 0, "candid": 1, "objectId": 1, "candidate.ra": 1, "candidate.dec": 1, "candidate.jd": 1}}]))
    return {"alerts": sample}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bodies(scenario: str, a: dict) -> tuple[str, str, str | None]:
    """(method, path, json body) of one request for an alert sample ``a``."""
    radec = {"o": [a["candidate"]["ra"], a["candidate"]["dec"]]}
    proj = {"_id": 0, "candid": 1, "objectId": 1, "candidate.jd": 1, "candidate.magpsf": 1}
    if scenario == "find_objectid":
        q = {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"objectId": a["objectId"]},
                                             "projection": NO_CUTOUTS}}
    elif scenario.startswith("cone"):
        catalog = CATALOG if scenario.endswith("catalog") else "ZTF_alerts"
        q = {"query_type": "cone_search", "query": {"object_coordinates": {
            "cone_search_radius": 2 if scenario.startswith("cone_2arcsec") else 60, "cone_search_unit": "arcsec",
            "radec": radec}, "catalogs": {catalog: {"filter": {}, "projection": proj if catalog == "ZTF_alerts" else
                                                    {"_id": 1, "mag": 1}}}}}
    elif scenario == "count":
        jd = a["candidate"]["jd"]
        q = {"query_type": "count_documents", "query": {"catalog": "ZTF_alerts",
                                                        "filter": {"candidate.jd": {"$gte": jd - 0.01, "$lt": jd + 0.01}}}}
    elif scenario == "aggregate":
        q = {"query_type": "aggregate", "query": {"catalog": "ZTF_alerts", "pipeline": [
            {"$match": {"objectId": a["objectId"]}}, {"$project": {"_id": 0, "jd": "$candidate.jd", "mag": "$candidate.magpsf"}},
            {"$sort": {"jd": 1}}, {"$limit": 10}]}}
    else:
        return "GET", f"/api/cutouts/ztf/{a['candid']}/science/png", None
    return "POST", "/api/queries", json.dumps(q)


async def _run_scenario(url: str, token: str, scenario: str, alerts: list, clients: int, n: int) -> dict:
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    client = AsyncHTTPClient(force_instance=True, max_clients=clients)
    lat, db_ms, srv_ms, errors = [], [], [], 0
    counter = iter(range(n))
    rng = random.Random(scenario)

    async def worker():
        nonlocal errors
        for _ in counter:
            method, path, body = _bodies(scenario, rng.choice(alerts))
            req = HTTPRequest(url + path, method=method, body=body, headers={"Authorization": token},
                              request_timeout=300, connect_timeout=60)
            t0 = time.perf_counter()
            try:
                resp = await client.fetch(req, raise_error=False)
            except Exception:  # noqa: BLE001 - a timeout counts as an error
                errors += 1
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            if resp.code != 200:
                errors += 1
                continue
            st = resp.headers.get("Server-Timing", "")
            parts = dict(p.strip().split(";dur=") for p in st.split(",") if ";dur=" in p)
            if "db" in parts:
                db_ms.append(float(parts["db"]))
                srv_ms.append(float(parts["total"]))

    # warm-up (connections, caches), not measured
    for _ in range(clients):
        method, path, body = _bodies(scenario, rng.choice(alerts))
        try:
            await client.fetch(HTTPRequest(url + path, method=method, body=body, headers={"Authorization": token},
                                           request_timeout=300), raise_error=False)
        except Exception:  # noqa: BLE001
            pass
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    client.close()
    return {"scenario": scenario, "n": len(lat), "errors": errors, "rps": len(lat) / wall,
            "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
            "server_ms": statistics.fmean(srv_ms) if srv_ms else float("nan"),
            "db_ms": statistics.fmean(db_ms) if db_ms else float("nan")}


def _direct_op(config, scenario: str, a: dict, pixels: bool = True) -> None:
    """The database operation behind one API request of ``scenario`` about alert ``a``, sent
    synchronously without the API (the public user's restriction included)."""
    import math

    from api import cones
    from kowalski import db
    coll = db.get_db(config)["ZTF_alerts"]
    ra, dec = a["candidate"]["ra"], a["candidate"]["dec"]
    pub = {"candidate.programid": 1}  # as the API restricts a public-only user
    if scenario == "find_objectid":
        list(coll.find({"objectId": a["objectId"], **pub}, NO_CUTOUTS))
    elif scenario.startswith("cone"):
        r = (2 if scenario.startswith("cone_2arcsec") else 60) * math.pi / 180 / 3600
        target, cond = (db.get_db(config)[CATALOG], {}) if scenario.endswith("catalog") else (coll, pub)
        if pixels:  # what the database does for the API's pixel path: the range queries, one by one
            for c in cones.pixel_conditions(ra, dec, r):
                list(target.find({**c, **cond}, {"_id": 1, "coordinates.radec_geojson": 1}))
        else:
            list(target.find({"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180, dec], r]}},
                              **cond}, {"_id": 1}))
    elif scenario == "count":
        jd = a["candidate"]["jd"]
        coll.count_documents({"candidate.jd": {"$gte": jd - 0.01, "$lt": jd + 0.01}, **pub})
    elif scenario == "aggregate":
        list(coll.aggregate([{"$match": {"objectId": a["objectId"], **pub}},
                             {"$project": {"_id": 0, "jd": "$candidate.jd", "mag": "$candidate.magpsf"}},
                             {"$sort": {"jd": 1}}, {"$limit": 10}]))
    else:
        coll.find_one({"candid": a["candid"], **pub}, {"_id": 0, "cutoutScience": 1})


def _direct_db(config, scenario: str, alerts: list, n: int = 60, pixels: bool = True) -> float:
    """p50 of the same database operation sent by one synchronous client (no API)."""
    rng = random.Random(1)
    times = []
    for _ in range(n):
        a = rng.choice(alerts)
        t0 = time.perf_counter()
        _direct_op(config, scenario, a, pixels)
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 50)


def _direct_db_rps(config, scenario: str, alerts: list, clients: int, n: int, pixels: bool = True) -> float:
    """Operations per second the database itself serves for ``scenario`` to ``clients`` concurrent
    synchronous clients (threads sharing one connection pool): the bound the API is compared with."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(2)
    picks = [rng.choice(alerts) for _ in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda a: _direct_op(config, scenario, a, pixels), picks))
    return n / (time.perf_counter() - t0)


def main(args) -> int:
    from kowalski.config import load_config
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": args.database}
    config = load_config(environ=env)
    from kowalski import db
    db.ensure_indexes(config)
    info = load_archive(config, env, args.alerts, args.reload, args.catalog_sources)
    from api.cones import choose_mode
    pixels = choose_mode(config, {ix["name"] for ix in db.get_db(config)["ZTF_alerts"].list_indexes()},
                         "ZTF_alerts") == "healpix"
    alerts = info["alerts"]
    processes = args.processes or int(config["api"].get("processes", 2))
    proc, url = start_api(config, env, processes, args.port)
    try:
        _, token = bench_tokens(config, url)
        n_alerts = db.get_db(config)["ZTF_alerts"].estimated_document_count()
        coll = db.get_db(config)["ZTF_alerts"]
        window = statistics.fmean(coll.count_documents({"candidate.jd": {"$gte": a["candidate"]["jd"] - 0.01,
                                                                          "$lt": a["candidate"]["jd"] + 0.01}})
                                  for a in alerts[:10])
        _say(f"\nAPI benchmark: {n_alerts} archived alerts, {processes} API processes, user with public rights "
             f"(programid 1); cones through {'HEALPix ranges' if pixels else '$geoWithin'}; catalog {CATALOG} of "
             f"{args.catalog_sources:,} sources; a count's ±0.01 d JD window holds {window:.0f} alerts on average")
        rows = []
        direct: dict = {}
        for clients, n_req in ((1, max(20, args.requests // 4)), (args.clients, args.requests)):
            _say(f"\n{clients} client(s), {n_req} requests per scenario")
            head = (f"{'scenario':22s} {'req/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
                    f"{'server ms':>10s} {'db wait ms':>10s} {'direct db p50':>14s} {'errors':>6s}")
            _say(head)
            _say("-" * len(head))
            for scenario in SCENARIOS:
                r = asyncio.run(_run_scenario(url, token, scenario, alerts, clients, n_req))
                if scenario not in direct:
                    direct[scenario] = {"direct_db_p50": _direct_db(config, scenario, alerts, pixels=pixels)}
                    if scenario.startswith("cone") and pixels and getattr(args, "compare_geowithin", False):  # what pixels save
                        direct[scenario]["geowithin_p50"] = _direct_db(config, scenario, alerts, n=5, pixels=False)
                r.update(direct[scenario], clients=clients)
                if clients > 1:  # the same operations straight to the database, as many clients at once
                    r["direct_db_rps"] = _direct_db_rps(config, scenario, alerts, clients, n_req, pixels)
                rows.append(r)
                vs_db = (f"   (database alone: {r['direct_db_rps']:.1f} op/s; API = {r['rps'] / r['direct_db_rps']:.0%} of it)"
                         if "direct_db_rps" in r else "")
                _say(f"{scenario:22s} {r['rps']:7.1f} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f} "
                     f"{r['server_ms']:10.1f} {r['db_ms']:10.1f} {r['direct_db_p50']:14.1f} {r['errors']:6d}" + vs_db
                     + (f"   ($geoWithin directly: p50 {r['geowithin_p50']:.0f} ms)" if "geowithin_p50" in r else ""))
        _say("\nserver ms: mean time in the API process per request (Server-Timing); db wait ms: the part of it "
             "spent awaiting the database;\ndirect db p50: the same database operation sent by one synchronous "
             "client, without the API;\ndatabase alone: the same operations from as many concurrent synchronous "
             "clients (threads), without the API.")
        if getattr(args, "json", None):
            Path(args.json).write_text(json.dumps({"alerts": n_alerts, "clients": args.clients, "processes": processes,
                                                   "rows": rows}, indent=2))
    finally:
        stop_api(proc)
    return 0


def start_api(config, env: dict, processes: int, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``kowalski api`` on a free port against the benchmark database, logging at WARNING (an access
    line per request would cost a write each); returns once it answers."""
    import requests
    port = port or _free_port()
    log_path = config.var_dir / "log" / "api-bench.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "kowalski.cli", "--log-level", "WARNING", "api", "--port", str(port),
                             "--processes", str(processes)], env=env, stdout=open(log_path, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=str(config.root))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "/", timeout=1).status_code == 401:
                return proc, url
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_api(proc)
            raise SystemExit(f"the API did not start; see {log_path}")
        time.sleep(0.2)


def stop_api(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except ProcessLookupError:  # it already exited (e.g. it could not start)
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def bench_tokens(config, url: str) -> tuple[str, str]:
    """(admin token, token of the user ``bench`` with public rights only)."""
    import requests
    s = requests.Session()
    admin = s.post(url + "/api/auth", json={"username": config["admin"]["username"],
                                             "password": str(config["admin"]["password"])}).json()["token"]
    s.post(url + "/api/users", json={"username": "bench", "password": "bench"}, headers={"Authorization": admin})
    return admin, s.post(url + "/api/auth", json={"username": "bench", "password": "bench"}).json()["token"]
