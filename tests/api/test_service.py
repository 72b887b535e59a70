"""The API as a managed service (`kowalski up` / `down` / `status`) and its graceful shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket

import requests

from kowalski.services import SERVICE_CLASSES, get_service
from kowalski.services.api import ApiService
from tests.api.conftest import Api, free_port, start_server


def test_registered_after_kafka():
    names = [c.name for c in SERVICE_CLASSES]
    assert names.index("api") == names.index("kafka") + 1


def test_service_start_health_stop(config, tmp_path, monkeypatch):
    port = free_port()
    cfg = type(config)({**config, "api": {**config["api"], "port": port, "url": f"http://127.0.0.1:{port}"},
                        "paths": {**config["paths"], "var": str(tmp_path / "var")}})
    svc = ApiService(cfg)
    assert svc.embedded and svc.address == f"http://127.0.0.1:{port}"
    assert not svc.health(timeout=0.5)[0]
    # the service's command loads config from the environment: this test's database and port
    monkeypatch.setenv("KOWALSKI_API__PORT", str(port))
    monkeypatch.setenv("KOWALSKI_DATABASE__NAME", config["database"]["name"])
    st = svc.start()
    try:
        assert st.healthy and st.running, st
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert r.status_code == 401 and r.json()["message"] == "Unauthorized"
    finally:
        assert svc.stop()
    assert not svc.health(timeout=0.5)[0] and svc.pid() is None


def test_external_api_is_not_started(config):
    cfg = type(config)({**config, "api": {**config["api"], "url": "http://api.example:4000"}})
    assert not get_service(cfg, "api").embedded


def test_sigterm_lets_requests_in_flight_finish(config):
    """A request the server has provably begun (headers read, handler prepared: it answered
    ``100 Continue``) but not finished (its body not yet sent) when SIGTERM arrives is answered in
    full; then the server exits cleanly. No sleep decides what "in flight" means."""
    from kowalski import db
    n = 3000
    db.get_db(config)["slow"].insert_many([{"i": i, "s": "x" * 300} for i in range(n)])
    proc, url, log = start_server(config, processes=2)
    api = Api(url, config)
    token = api.admin_token  # log in before the request
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"query_type": "aggregate", "query": {"catalog": "slow", "pipeline": [
        {"$group": {"_id": "$i", "n": {"$sum": 1}}}, {"$count": "groups"}]}}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.sendall((f"POST /api/queries HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                      "Expect: 100-continue\r\nConnection: close\r\n\r\n").encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            assert chunk, f"connection closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100"), interim  # the request is now in a worker's hands
        os.killpg(proc.pid, signal.SIGTERM)
        sock.sendall(body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        status, answer = resp.status, json.loads(resp.read())
    finally:
        sock.close()
    rc = proc.wait(60)
    assert status == 200 and answer["data"] == [{"groups": n}], (status, answer)
    assert rc == 0
    assert "Kowalski API stopped" in log.read_text()
    try:
        requests.get(url + "/", timeout=1)
        raise AssertionError("still answering after SIGTERM")
    except requests.ConnectionError:
        pass
