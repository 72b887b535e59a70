"""`kowalski bench soak`: sustained ingestion at a fixed rate with filters active, for memory
leaks and latency drift. Every minute it prints the resident memory of the broker, its Dask
workers, the API and the database server, and the Kafka → stored latency of that minute.

Everything runs as the real processes (a `kowalski broker` and a `kowalski api` started here, the
database and Kafka of `kowalski up`) on a database of its own (`kowalski_soak`, dropped first).
Alerts are the real ZTF samples, replicated with fresh ids (marked synthetic), produced at
``--rate`` by a paced producer; the API is asked one object and one cone per second meanwhile.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import requests

from broker.filters.bench import add_active_filters
from kowalski import db
from kowalski.bench import get_bench_subparsers
from kowalski.config import load_config

SOAK_DB = "kowalski_soak"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(procs) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


class Payloads(threading.Thread):
    """Synthetic copies of the real alerts, made ahead of the producer in a bounded queue."""

    def __init__(self, config, first_copy: int = 1):
        super().__init__(daemon=True)
        from broker.bench_kernel import sample_messages

        self.base = list(dict.fromkeys(sample_messages(config, 200)))
        self.q: queue.Queue = queue.Queue(maxsize=2000)
        self.k = first_copy
        self.stop = threading.Event()

    def run(self):
        from broker.produce import synthetic_copy

        while not self.stop.is_set():
            for data in self.base:
                self.q.put(synthetic_copy(data, self.k))
            self.k += 1


def _producer(servers: str, topic: str, payloads: Payloads, rate: float, stop: threading.Event, counter: list):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    t0 = time.monotonic()
    while not stop.is_set():
        p.produce(topic, payloads.q.get())
        p.poll(0)
        counter[0] += 1
        delay = t0 + counter[0] / rate - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    p.flush(30)


def _api_load(url: str, token: str, stop: threading.Event, counts: dict):
    """One object query and one 60\" cone per second, as a light interactive load."""
    s = requests.Session()
    s.trust_env = False
    h = {"Authorization": f"Bearer {token}"}
    while not stop.wait(1.0):
        for q in ({"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"objectId": "ZTF18abtgwtc"},
                                                   "projection": {"_id": 0, "candid": 1}}},
                  {"query_type": "cone_search", "query": {"object_coordinates": {
                      "radec": {"x": [284.2, 9.6]}, "cone_search_radius": 60, "cone_search_unit": "arcsec"},
                      "catalogs": {"ZTF_alerts": {"filter": {}, "projection": {"_id": 0, "candid": 1}}}}}):
            try:
                r = s.post(url + "/api/queries", json=q, headers=h, timeout=30)
                counts["ok" if r.status_code == 200 else "errors"] += 1
            except requests.RequestException:
                counts["errors"] += 1


def _start(cmd, env, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        return subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_http(url: str, ok, proc, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            r = requests.get(url, timeout=2)
            if ok(r):
                return r
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def bench_soak(args) -> int:
    if args.minutes <= 0 or args.rate <= 0:
        from kowalski.errors import CLIError
        raise CLIError("--minutes and --rate must be positive")
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": args.database}
    config = load_config(environ=env)
    from kowalski.services import get_service

    database_svc = get_service(config, "database")
    db_pid = database_svc.pid() if database_svc.embedded else None
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"Python {platform.python_version()}; soak {args.minutes} min at {args.rate:g} alerts/s, "
          f"{args.filters} active filters, database {args.database}", flush=True)
    db.client(config).drop_database(args.database)
    db.ensure_indexes(config)
    add_active_filters(config, args.filters)

    topic = f"ztf_20991231_programid1_soak{uuid.uuid4().hex[:6]}"
    metrics_port, api_port = _free_port(), _free_port()
    benv = {**env, "KOWALSKI_SURVEYS__ZTF__TOPIC_PATTERN": f"^{re.escape(topic)}$"}
    logs = config.var_dir / "log"
    broker = _start([sys.executable, "-m", "kowalski.cli", "broker", "--survey", "ztf", "--group-id",
                     f"soak-{uuid.uuid4().hex[:6]}", "--metrics-port", str(metrics_port)], benv, logs / "soak-broker.log")
    api = _start([sys.executable, "-m", "kowalski.cli", "api", "--port", str(api_port)], env, logs / "soak-api.log")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # stop early, still cleaning up the processes
        signal.signal(sig, lambda *_: stop.set())
    payloads = Payloads(config)
    try:
        stats_url = f"http://127.0.0.1:{metrics_port}/stats"
        _wait_http(stats_url, lambda r: r.json()["state"] == "running", broker, "the broker")
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(api_url + "/", lambda r: r.status_code == 401, api, "the API")
        token = requests.post(api_url + "/api/auth", json={"username": config["admin"]["username"],
                                                           "password": str(config["admin"]["password"])},
                              timeout=30).json()["token"]
        payloads.start()
        produced = [0]
        api_counts = {"ok": 0, "errors": 0}
        threads = [threading.Thread(target=_producer, args=(config["kafka"]["bootstrap_servers"], topic, payloads,
                                                            args.rate, stop, produced), daemon=True),
                   threading.Thread(target=_api_load, args=(api_url, token, stop, api_counts), daemon=True)]
        for t in threads:
            t.start()
        bproc, aproc = psutil.Process(broker.pid), psutil.Process(api.pid)
        dproc = [psutil.Process(db_pid)] if db_pid else []
        print("min  produced   stored  alerts/s  broker MB  workers MB  api MB  database MB  p50 s  p95 s  "
              "dead  outages  api ok/err", flush=True)
        rows = []
        last_stored, t_last = 0, time.monotonic()
        for minute in range(1, args.minutes + 1):
            if stop.wait(max(0.0, t_last + 60 - time.monotonic())):
                print("stopped early", flush=True)
                break
            if broker.poll() is not None or api.poll() is not None:
                raise RuntimeError(f"a soaked process exited (broker {broker.poll()}, api {api.poll()}); see {logs}")
            s = requests.get(stats_url, timeout=30).json()
            stored = s["surveys"]["ztf"]["stored"]
            now = time.monotonic()
            st = requests.get(f"{stats_url}?last={max(1, stored - last_stored)}", timeout=30).json()
            workers = [c for c in bproc.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
            api_children = aproc.children(recursive=True)
            row = {"minute": minute, "produced": produced[0], "stored": stored,
                   "rate": (stored - last_stored) / (now - t_last), "broker_mb": _rss_mb([bproc]),
                   "workers_mb": _rss_mb(workers), "api_mb": _rss_mb([aproc, *api_children]),
                   "database_mb": _rss_mb(dproc) if dproc else float("nan"),
                   "p50": st["latency_s"]["p50"], "p95": st["latency_s"]["p95"], "dead": s["dead_letters"],
                   "outages": s["db_outages"], "api_ok": api_counts["ok"], "api_err": api_counts["errors"]}
            rows.append(row)
            last_stored, t_last = stored, now
            print(f"{minute:3d}  {row['produced']:8d} {row['stored']:8d}  {row['rate']:8.1f}  {row['broker_mb']:9.0f}  "
                  f"{row['workers_mb']:10.0f}  {row['api_mb']:6.0f}  {row['database_mb']:11.0f}  {row['p50']:5.2f}  "
                  f"{row['p95']:5.2f}  {row['dead']:4d}  {row['outages']:7d}  {row['api_ok']}/{row['api_err']}",
                  flush=True)
        if rows:
            _summary(rows, args.warmup)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    finally:
        stop.set()
        payloads.stop.set()
        for proc in (broker, api):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (broker, api):
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0


def _summary(rows: list[dict], warmup: int) -> None:
    steady = rows[min(warmup, len(rows) - 1):]
    first, last = steady[0], steady[-1]
    print(f"after {first['minute'] - 1} warm-up minute(s): ", end="")
    print(", ".join(f"{k.replace('_mb', '')} {first[k]:.0f} -> {last[k]:.0f} MB ({last[k] - first[k]:+.0f})"
                    for k in ("broker_mb", "workers_mb", "api_mb", "database_mb")))
    p95 = [r["p95"] for r in steady]
    rates = [r["rate"] for r in steady]
    print(f"latency p95 per minute: min {min(p95):.2f} s, median {sorted(p95)[len(p95) // 2]:.2f} s, max {max(p95):.2f} s; "
          f"stored alerts/s per minute: min {min(rates):.1f}, max {max(rates):.1f}; "
          f"backlog at the end: {last['produced'] - last['stored']} alerts")


def register(sub) -> None:
    p = get_bench_subparsers(sub).add_parser(
        "soak", help="sustained ingestion with filters: RSS of every process and latency p95, every minute")
    p.add_argument("--minutes", type=int, default=30)
    p.add_argument("--rate", type=float, default=50.0, help="alerts/s produced (default 50)")
    p.add_argument("--filters", type=int, default=20, help="active filters (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="minutes left out of the growth summary (default 5)")
    p.add_argument("--database", default=SOAK_DB)
    p.add_argument("--json", default=None, help="also write the per-minute rows to this JSON file")
    p.set_defaults(func=bench_soak)
