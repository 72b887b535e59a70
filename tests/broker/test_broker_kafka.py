"""The broker end to end on real Kafka, a real database and the real ZTF alerts.

Each test publishes to its own topic and runs the broker (in a thread, or as a real process for
the crash test) subscribed to exactly that topic, with its own consumer group and database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from broker.consumer import AlertBroker
from broker.produce import produce
from kowalski import db
from kowalski.config import load_config
from tests.api.conftest import free_port
from tests.conftest import ROOT, shared_data

NIGHT = "alerts/kowalski/ztf_alerts/20231012"


def _wait(predicate, timeout=180.0, every=0.5, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def broker_config(config, topic):
    """A config of this test's own: its database (fresh), its topic, one Dask worker."""
    name = f"{config['database']['name'][:40]}_{uuid.uuid4().hex[:6]}"
    cfg = load_config(environ={**os.environ, "KOWALSKI_DATABASE__NAME": name})
    db.ensure_indexes(cfg)
    cfg["surveys"]["ztf"]["topic_pattern"] = f"^{re.escape(topic)}$"
    cfg["broker"]["dask"]["n_workers"] = 1
    return cfg


class BrokerThread:
    def __init__(self, cfg, group, metrics_port=-1):
        self.broker = AlertBroker(cfg, ["ztf"], group_id=group, metrics_port=metrics_port)
        self.thread = threading.Thread(target=self.broker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.broker

    def __exit__(self, *exc):
        self.broker.stop()
        self.thread.join(120)
        assert not self.thread.is_alive()


def counts(cfg):
    d = db.get_db(cfg)
    return (d[db.alerts_collection(cfg, "ztf")].count_documents({}),
            d[db.aux_collection(cfg, "ztf")].count_documents({}))


# what a group's coordinator answers while a fresh Kafka loads (or moves) __consumer_offsets
COORDINATOR_BUSY = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT}


def committed(cfg, group, topic, attempts: int = 30) -> int:
    """The group's committed offset on partition 0, asked again while the coordinator is busy."""
    c = Consumer({"bootstrap.servers": cfg["kafka"]["bootstrap_servers"], "group.id": group})
    try:
        for attempt in range(attempts):
            try:
                return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
            except KafkaException as exc:
                if exc.args[0].code() not in COORDINATOR_BUSY or attempt == attempts - 1:
                    raise
                time.sleep(1)
    finally:
        c.close()


def test_ingest_night_then_reingest_adds_nothing(config, ztf_topic):
    night = shared_data(NIGHT)
    cfg = broker_config(config, ztf_topic)
    group = f"test-{uuid.uuid4().hex[:8]}"
    servers = cfg["kafka"]["bootstrap_servers"]
    produce(servers, ztf_topic, [night], progress=False)
    with BrokerThread(cfg, group) as broker:
        _wait(lambda: counts(cfg) == (24, 24), what="24 alerts and 24 aux documents")
        _wait(lambda: committed(cfg, group, ztf_topic) == 24, what="offset 24 committed")
        aux_before = list(db.get_db(cfg)[db.aux_collection(cfg, "ztf")].find({}, {"_id": 1, "prv_candidates": 1}).sort("_id"))
        # the same night again: stored nothing new, offsets move on
        produce(servers, ztf_topic, [night], progress=False)
        _wait(lambda: committed(cfg, group, ztf_topic) == 48, what="offset 48 committed")
        snap = broker.stats.snapshot()["surveys"]["ztf"]
    assert counts(cfg) == (24, 24)
    aux_after = list(db.get_db(cfg)[db.aux_collection(cfg, "ztf")].find({}, {"_id": 1, "prv_candidates": 1}).sort("_id"))
    assert aux_after == aux_before
    assert snap["messages"] == 48 and snap["stored"] == 24 and snap["duplicates"] == 24
    one = db.get_db(cfg)[db.alerts_collection(cfg, "ztf")].find_one({"candid": 2475433850015010009})
    assert one["objectId"] == "ZTF17aadcvhq" and "prv_candidates" not in one and "fp_hists" not in one


def test_corrupt_message_goes_to_dlq_and_the_rest_is_stored(config, ztf_topic):
    night = shared_data(NIGHT)
    cfg = broker_config(config, ztf_topic)
    files = sorted(night.glob("*.avro"))[:4]
    p = Producer({"bootstrap.servers": cfg["kafka"]["bootstrap_servers"]})
    p.produce(ztf_topic, files[0].read_bytes())
    p.produce(ztf_topic, b"this is not an avro file")               # offset 1
    p.produce(ztf_topic, files[1].read_bytes()[:500])                 # offset 2: truncated container
    for f in files[1:]:
        p.produce(ztf_topic, f.read_bytes())
    assert p.flush(30) == 0
    group = f"test-{uuid.uuid4().hex[:8]}"
    with BrokerThread(cfg, group):
        _wait(lambda: counts(cfg)[0] == 4, what="the 4 good alerts")
        _wait(lambda: committed(cfg, group, ztf_topic) == 6, what="all 6 offsets committed")
    dlq = Consumer({"bootstrap.servers": cfg["kafka"]["bootstrap_servers"], "group.id": f"dlq-{group}",
                    "auto.offset.reset": "earliest"})
    dlq.subscribe([ztf_topic + ".dlq"])
    got = []
    t0 = time.monotonic()
    while len(got) < 2 and time.monotonic() - t0 < 30:
        m = dlq.poll(1)
        if m is not None and m.error() is None:
            got.append(m)
    dlq.close()
    assert len(got) == 2
    headers = [{k: v.decode() for k, v in m.headers()} for m in got]
    assert [h["source_offset"] for h in headers] == ["1", "2"]
    assert all(h["source_topic"] == ztf_topic and h["reason"] for h in headers)
    assert got[0].value() == b"this is not an avro file"  # the original bytes are kept


def test_sigkill_mid_stream_then_restart_exact_counts(config, ztf_topic):
    """SIGKILL (broker + Dask workers) while it consumes, restart: every alert stored exactly once.

    Half the alerts are in Kafka when the broker is killed, the other half are produced while it is
    down, so the crash always comes before the end of the stream (no race of the kill against the
    broker finishing first)."""
    night = shared_data(NIGHT)
    cfg = broker_config(config, ztf_topic)
    servers = cfg["kafka"]["bootstrap_servers"]
    replicate = 7  # per half: 24 real + 168 synthetic copies = 192 alerts; 384 in all
    produce(servers, ztf_topic, [night], replicate=replicate, progress=False)
    first = 24 * (1 + replicate)
    group = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ,
           "KOWALSKI_DATABASE__NAME": cfg["database"]["name"],
           "KOWALSKI_SURVEYS__ZTF__TOPIC_PATTERN": f"^{re.escape(ztf_topic)}$",
           "KOWALSKI_BROKER__DASK__N_WORKERS": "1",
           "KOWALSKI_BROKER__BATCH_SIZE": "8"}
    cmd = [sys.executable, "-m", "kowalski.cli", "broker", "--survey", "ztf", "--group-id", group,
           "--metrics-port", "-1"]

    def start():
        return subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = start()
    try:
        _wait(lambda: counts(cfg)[0] >= 40, every=0.05, what="some alerts stored before the crash")
        os.killpg(proc.pid, signal.SIGKILL)  # the broker and its Dask workers, mid-stream
        proc.wait(30)
        stored_at_crash = counts(cfg)[0]
        # written while the broker is down: the first half again (copies 0..7: duplicates, as a replay
        # would bring) and 192 new alerts (copies 8..15)
        produce(servers, ztf_topic, [night], replicate=2 * replicate + 1, progress=False)
        total = 24 * (2 * replicate + 2)  # distinct alerts: 384
        assert stored_at_crash <= first < total
        proc = start()
        _wait(lambda: counts(cfg) == (total, total), timeout=600, what=f"{total} alerts after restart")
        _wait(lambda: committed(cfg, group, ztf_topic) == first + 24 * (2 * replicate + 2),
              what="all offsets committed")
        proc.send_signal(signal.SIGTERM)  # clean shutdown
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    alerts = db.get_db(cfg)[db.alerts_collection(cfg, "ztf")]
    candids = [d["candid"] for d in alerts.find({}, {"candid": 1})]
    assert len(candids) == len(set(candids)) == total
    assert alerts.count_documents({"publisher": {"$regex": "^kowalski synthetic copy"}}) == total - 24
    # no history point was duplicated by the replays either
    for aux in db.get_db(cfg)[db.aux_collection(cfg, "ztf")].find({}, {"prv_candidates": 1}):
        keys = [(p.get("candid"), p["jd"], p.get("fid")) for p in aux.get("prv_candidates", [])]
        assert len(keys) == len(set(keys)), aux["_id"]


def test_pattern_with_digit_classes_picks_up_a_topic_created_later(config):
    """Survey patterns use \\d (as ZTF's do); librdkafka's regex engine must still match them."""
    night = shared_data(NIGHT)
    topic = f"ztf_20231012_programid9{uuid.uuid4().int % 100000:05d}"
    cfg = broker_config(config, topic)
    cfg["surveys"]["ztf"]["topic_pattern"] = r"^ztf_\d{8}_programid9\d{5}$"
    group = f"test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with BrokerThread(cfg, group, metrics_port=port):
        # subscribed before the topic exists, as after a night rolls over: the broker reports
        # "running" (on /healthz, from its stats) once its consumer has subscribed
        _wait(lambda: _healthz(port) == 200, every=0.1, what="the broker running (GET /healthz 200)")
        produce(cfg["kafka"]["bootstrap_servers"], topic, [night], progress=False)
        # this topic's offsets (older topics of the same pattern may hold the same alerts)
        _wait(lambda: committed(cfg, group, topic) == 24, what="the new topic's 24 offsets committed")
    assert counts(cfg) == (24, 24)


def _healthz(port) -> int | None:
    import requests
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
    except requests.RequestException:
        return None
