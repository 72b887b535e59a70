"""The API as a managed service (`kowalski up` / `down` / `status`) and its graceful shutdown."""

from __future__ import annotations

import os
import signal
import threading
import time

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
    from kowalski import db
    db.get_db(config)["slow"].insert_many([{"i": i, "s": "x" * 300} for i in range(40000)])
    proc, url, log = start_server(config, processes=2)
    api = Api(url, config)
    token = api.admin_token  # log in before the slow request
    result = {}

    def slow():
        try:
            r = api.query({"query_type": "aggregate", "query": {"catalog": "slow", "pipeline": [
                {"$group": {"_id": "$i", "n": {"$sum": 1}}}, {"$count": "groups"}]}}, token)
            result["status"], result["body"] = r.status_code, r.json()
        except requests.RequestException as exc:
            result["error"] = exc

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    th.join(60)
    rc = proc.wait(30)
    assert "error" not in result, result
    assert result["status"] == 200 and result["body"]["data"] == [{"groups": 40000}], result
    assert rc == 0
    assert "Kowalski API stopped" in log.read_text()
    try:
        requests.get(url + "/", timeout=1)
        raise AssertionError("still answering after SIGTERM")
    except requests.ConnectionError:
        pass
