"""The Tornado application and the server: N processes sharing one port, graceful shutdown.

``kowalski api [--host H] [--port P] [--processes N]``: the parent binds the socket
(SO_REUSEPORT), makes sure the admin user exists with the configured password, then forks N
workers that each run their own event loop and ``pymongo.AsyncMongoClient``. A crashed worker
is restarted. SIGTERM/SIGINT to the parent (or to the process group): workers stop accepting,
finish the requests in flight (up to ``api.shutdown_grace_seconds``), close their database
client and exit; the parent exits once they have.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import sys
import time
from types import SimpleNamespace

import tornado.httpserver
import tornado.netutil
import tornado.web

from api.auth import UserCache, check_password, hash_password
from api.base import NotFoundHandler
from kowalski import db as kdb
from kowalski.config import Config
from kowalski.repositories import Users

log = logging.getLogger("kowalski.api")


def make_app(config: Config, database) -> tornado.web.Application:
    from api.handlers import all_handlers

    state = SimpleNamespace(users=UserCache(config), catalogs={}, inflight=0)
    return tornado.web.Application(
        all_handlers(),
        config=config,
        db=database,
        state=state,
        default_handler_class=NotFoundHandler,
        compress_response=False,
        xheaders=False,
    )


def ensure_admin(config: Config) -> str:
    """Create the admin user, or reset its password to the configured one. Returns what was done."""
    users = Users(kdb.get_db(config), config)
    username = config["admin"]["username"]
    password = str(config["admin"]["password"])
    doc = users.get(username)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rounds = int(config["api"].get("bcrypt_rounds", 12))
    if doc is None:
        users.add_if_missing(username, {
            "username": username, "email": config["admin"].get("email") or "",
            "password": hash_password(password, rounds), "permissions": {}, "last_modified": now})
        return "created"
    if not check_password(password, doc.get("password")):
        users.update(username, {"password": hash_password(password, rounds), "last_modified": now})
        return "password updated"
    return "unchanged"


def bind(config: Config, host: str, port: int) -> list[socket.socket]:
    return tornado.netutil.bind_sockets(port, host, family=socket.AF_INET, reuse_port=True, backlog=1024)


async def serve(config: Config, sockets: list[socket.socket], worker: int) -> None:
    """One worker: serve until SIGTERM/SIGINT, then drain and close."""
    client = kdb.async_client(config)
    database = client[config["database"]["name"]]
    app = make_app(config, database)
    server = tornado.httpserver.HTTPServer(
        app, max_body_size=int(config["api"]["max_body_bytes"]) * 4 + 65536, idle_connection_timeout=120,
        body_timeout=300)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %d (pid %d) serving on %s", worker, os.getpid(),
             ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets))
    await stop.wait()
    t0 = time.monotonic()
    server.stop()  # stop accepting
    grace = float(config["api"].get("shutdown_grace_seconds", 10))
    state = app.settings["state"]
    while state.inflight > 0 and time.monotonic() - t0 < grace:  # let requests in flight finish
        await asyncio.sleep(0.05)
    if state.inflight > 0:
        log.warning("worker %d: %d request(s) still running after %.0f s, closing anyway", worker, state.inflight, grace)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=2)
    except asyncio.TimeoutError:
        pass
    await client.close()
    log.info("worker %d stopped in %.2f s", worker, time.monotonic() - t0)


def _run_worker(config: Config, sockets, worker: int) -> None:
    try:
        asyncio.run(serve(config, sockets, worker))
    except Exception:  # noqa: BLE001
        log.exception("worker %d crashed", worker)
        os._exit(1)
    os._exit(0)


def run(config: Config, host: str | None = None, port: int | None = None, processes: int | None = None) -> int:
    host = host or str(config["api"]["host"])
    port = int(port if port is not None else config["api"]["port"])
    processes = int(processes or config["api"].get("processes", 1) or 1)
    t0 = time.monotonic()
    kdb.ensure_system(config)  # unique usernames and filter ids, whoever created this database
    what = ensure_admin(config)
    log.info("admin user %r: %s", config["admin"]["username"], what)
    kdb.close_all()  # no sync client may cross a fork
    sockets = bind(config, host, port)
    log.info("Kowalski API on http://%s:%d with %d process(es), database %r (ready in %.1f s)",
             host, port, processes, config["database"]["name"], time.monotonic() - t0)
    if processes == 1:
        asyncio.run(serve(config, sockets, 0))
        return 0

    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def spawn(worker: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _run_worker(config, sockets, worker)
        children[pid] = worker

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(processes):
        spawn(i)
    restarts: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker = children.pop(pid, None)
        if worker is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            continue
        log.error("worker %d (pid %d) exited with %s; restarting it", worker, pid, code)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 60] + [now]
        if len(restarts) > 10 * processes:
            log.error("workers keep crashing (%d restarts in 60 s): giving up", len(restarts))
            on_signal(signal.SIGTERM, None)
            continue
        spawn(worker)
    for s in sockets:
        s.close()
    log.info("Kowalski API stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    from kowalski.config import get_config
    p = argparse.ArgumentParser(prog="python -m api")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--processes", type=int)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    return run(get_config(), args.host, args.port, args.processes)
