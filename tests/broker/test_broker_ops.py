"""Broker operations: a database outage pauses and resumes consumption; metrics and stats."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

from broker.produce import produce
from kowalski import db
from kowalski.config import load_config
from kowalski.services.database import DatabaseService
from tests.api.conftest import free_port
from tests.broker.test_broker_kafka import BrokerThread, _wait, broker_config, committed, counts
from tests.conftest import ROOT, shared_data

NIGHT = "alerts/kowalski/ztf_alerts/20231012"


def test_database_outage_pauses_then_resumes(services, tmp_path, ztf_topic):
    files = sorted(shared_data(NIGHT).glob("*.avro"))
    port = free_port()
    env = {**os.environ, "KOWALSKI_PATHS__VAR": str(tmp_path / "var"),
           "KOWALSKI_DATABASE__EMBEDDED__PORT": str(port), "KOWALSKI_MONGODB_URI": f"mongodb://127.0.0.1:{port}/",
           "KOWALSKI_DATABASE__SERVER_SELECTION_TIMEOUT_MS": "1500", "KOWALSKI_DATABASE__NAME": "outage"}
    own = load_config(environ=env)
    dbsvc = DatabaseService(own)
    dbsvc.start()
    try:
        db.ensure_indexes(own)
        cfg = broker_config(own, ztf_topic)
        cfg["database"] = own["database"]
        servers = cfg["kafka"]["bootstrap_servers"]
        group = f"test-{uuid.uuid4().hex[:8]}"
        with BrokerThread(cfg, group) as broker:
            produce(servers, ztf_topic, files[:12], progress=False)
            _wait(lambda: counts(cfg)[0] == 12, what="12 alerts before the outage")
            # stored, then filtered, then committed: the outage comes once all three are done
            _wait(lambda: committed(cfg, group, ztf_topic) == 12, what="offset 12 committed before the outage")
            dbsvc.stop()  # the database goes away
            produce(servers, ztf_topic, files[12:], progress=False)
            _wait(lambda: broker.stats.state.startswith("paused"), what="the broker to pause")
            assert committed(cfg, group, ztf_topic) == 12  # nothing acknowledged that is not stored
            time.sleep(2)
            dbsvc.start()  # ... and comes back with its data
            _wait(lambda: counts(cfg) == (24, 24), what="all 24 alerts after the outage")
            _wait(lambda: committed(cfg, group, ztf_topic) == 24, what="offset 24 committed")
            assert broker.stats.state == "running" and broker.stats.db_outages == 1
    finally:
        dbsvc.stop()
        db.close_all()


def test_metrics_endpoint_and_stats_command(config, ztf_topic):
    cfg = broker_config(config, ztf_topic)
    port = free_port()
    cfg["broker"]["metrics"]["port"] = port
    produce(cfg["kafka"]["bootstrap_servers"], ztf_topic, [shared_data(NIGHT)], progress=False)
    from broker.consumer import AlertBroker
    import threading

    broker = AlertBroker(cfg, ["ztf"], group_id=f"test-{uuid.uuid4().hex[:8]}", metrics_port=port)
    t = threading.Thread(target=broker.run, daemon=True)
    t.start()
    try:
        _wait(lambda: counts(cfg)[0] == 24, what="24 alerts")
        _wait(lambda: broker.stats.snapshot()["surveys"]["ztf"]["stored"] == 24, what="stats updated")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'kowalski_broker_alerts_total{outcome="stored",survey="ztf"}' in text
        assert 'kowalski_broker_stage_seconds_total{stage="ml",survey="ztf"}' in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        out = subprocess.run([sys.executable, "-m", "kowalski.cli", "broker", "stats", "--metrics-port", str(port)],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "state: running" in out.stdout and "stored      24" in out.stdout
        assert "ms/alert: decode" in out.stdout
    finally:
        broker.stop()
        t.join(120)
    down = subprocess.run([sys.executable, "-m", "kowalski.cli", "broker", "stats", "--metrics-port", str(port)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert down.returncode == 2 and "broker not reachable" in down.stderr


def test_a_taken_metrics_port_fails_the_start_before_anything_else(config, ztf_topic):
    """The metrics server binds first: an operator sees the clash at once, not after Dask has started."""
    from broker.consumer import AlertBroker

    cfg = broker_config(config, ztf_topic)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = AlertBroker(cfg, ["ztf"], group_id=f"test-{uuid.uuid4().hex[:8]}",
                             metrics_port=taken.getsockname()[1])
        try:
            broker.run()
        except OSError as exc:
            assert "in use" in str(exc)
        else:
            raise AssertionError("the broker started on a taken metrics port")
    assert broker.cluster is None and broker.consumer is None  # nothing was started
    assert broker.stats.snapshot()["state"] == "stopped"
