"""Kafka output of passing alerts: outbox -> one Avro topic per filter, read back by the plain
consumer example; an unreachable Kafka leaves everything pending with backoff, then it all
arrives once.

Each test has its own database (outbox) and its own output topics, and delivers what it reads."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import time
import uuid

import pytest

from broker.delivery import Delivery
from broker.delivery.kafka_out import KafkaTarget
from broker.filters.runner import FilterRunner
from kowalski import db
from tests.conftest import ROOT
from tests.delivery.test_filter_runner import LOOSE, add_filter

STRICT = [{"$match": {"candidate.drb": {"$gt": 0.9999}}}, {"$project": {"_id": 0, "candid": 1}}]


def passing(cfg, threshold) -> list[int]:
    """The candids of this test's alerts with drb > threshold (what LOOSE / STRICT let through)."""
    return sorted(a["candid"] for a in db.get_db(cfg)["ZTF_alerts"].find({}, {"candid": 1, "candidate.drb": 1})
                  if a["candidate"]["drb"] > threshold)


@pytest.fixture
def cfg(night):
    config = night
    add_filter(config, 1, LOOSE)
    add_filter(config, 2, STRICT)
    config["delivery"]["kafka"]["enabled"] = True
    config["delivery"]["kafka"]["topic"] = f"kowalski_filter_t{uuid.uuid4().hex[:8]}_{{filter_id}}"
    config["delivery"]["retry_base_s"] = 0  # retry at once in tests
    FilterRunner(config, "ztf").process(list(db.get_db(config)["ZTF_alerts"].find({})))
    return config


def read_topic(cfg, topic, n):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "consume_filter_topic.py"), topic,
                        "--bootstrap", cfg["kafka"]["bootstrap_servers"], "--group", f"g{uuid.uuid4().hex[:6]}",
                        "--from-beginning", "--max", str(n), "--idle-exit", "20"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_unreachable_kafka_keeps_everything_pending(cfg):
    outbox = db.filter_outbox(cfg, "ztf")
    n = outbox.count_documents({"pending": "kafka"})
    assert n == len(passing(cfg, 0.5)) + len(passing(cfg, 0.9999)) and n > 0
    bad = dict(cfg)
    bad["delivery"] = {**cfg["delivery"], "kafka": {**cfg["delivery"]["kafka"], "bootstrap_servers": "127.0.0.1:1",
                                                     "timeout_s": 2}}
    d = Delivery(bad, "ztf", targets={"kafka": KafkaTarget(bad)})
    d.base = d.max = 3600  # the next attempt is far away
    res = d.run_once()
    assert res["kafka"] == {"delivered": 0, "failed": n}
    doc = outbox.find_one({"filter_id": 1})
    assert doc["pending"] == ["kafka"] and doc["attempts"]["kafka"] == 1 and "kafka" in doc["last_error"]["kafka"]
    assert doc["next_at"]["kafka"] > dt.datetime.utcnow() + dt.timedelta(minutes=30)
    assert d.due("kafka") == []  # backing off
    assert outbox.count_documents({"pending": "kafka"}) == n  # nothing lost
    # a restart much later, with Kafka reachable: the state is in the database, all of it arrives
    outbox.update_many({}, {"$set": {"next_at.kafka": dt.datetime(2000, 1, 1)}})
    d = Delivery(cfg, "ztf")
    assert d.run_once()["kafka"] == {"delivered": n, "failed": 0}
    d.close()
    assert outbox.count_documents({"pending": "kafka"}) == 0


def test_everything_arrives_once_and_reads_with_a_plain_consumer(cfg):
    outbox = db.filter_outbox(cfg, "ztf")
    d = Delivery(cfg, "ztf")
    n = outbox.count_documents({"pending": "kafka"})
    assert n == outbox.count_documents({}) > 0  # this test's outbox: nothing was delivered before
    assert d.run_once()["kafka"] == {"delivered": n, "failed": 0}
    assert outbox.count_documents({"pending": "kafka"}) == 0
    assert d.run_once()["kafka"] == {"delivered": 0, "failed": 0}  # nothing is sent twice
    d.close()
    topic1 = cfg["delivery"]["kafka"]["topic"].format(filter_id=1)
    expected = passing(cfg, 0.5)
    recs = read_topic(cfg, topic1, len(expected))
    assert sorted(r["candid"] for r in recs) == expected and len({r["key"] for r in recs}) == len(expected)
    strict = read_topic(cfg, cfg["delivery"]["kafka"]["topic"].format(filter_id=2), len(passing(cfg, 0.9999)))
    assert sorted(r["candid"] for r in strict) == passing(cfg, 0.9999)
    one = next(r for r in recs if r["candid"] == 2475433850015010009)
    assert one["objectId"] == "ZTF17aadcvhq" and one["filter_id"] == 1 and one["fid"] == "v00001"
    assert set(one["annotations"]) == {"mean_rb"} and one["n_prv_candidates"] > 0


def test_record_content(cfg):
    """The full record: alert, history the filter saw, cutouts (gzipped FITS)."""
    import io

    import fastavro
    from confluent_kafka import Consumer

    d = Delivery(cfg, "ztf")  # this test delivers what it reads
    assert d.run_once()["kafka"]["delivered"] > 0
    d.close()
    topic = cfg["delivery"]["kafka"]["topic"].format(filter_id=1)
    c = Consumer({"bootstrap.servers": cfg["kafka"]["bootstrap_servers"], "group.id": f"g{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    rec = None
    deadline = time.monotonic() + 60
    try:
        while rec is None and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is not None and not msg.error() and msg.key() == b"2475433850015010009:1":
                reader = fastavro.reader(io.BytesIO(msg.value()))
                rec = next(iter(reader))
                schema = reader.writer_schema
    finally:
        c.close()
    assert rec is not None, f"record 2475433850015010009:1 not read from {topic} within 60 s"
    assert schema["name"] == "kowalski.FilterOutput"
    alert = db.get_db(cfg)["ZTF_alerts"].find_one({"candid": 2475433850015010009})
    aux = db.get_db(cfg)["ZTF_alerts_aux"].find_one({"_id": "ZTF17aadcvhq"})
    assert rec["candidate"]["magpsf"] == alert["candidate"]["magpsf"]
    assert rec["candidate"]["isdiffpos"] == alert["candidate"]["isdiffpos"]
    assert rec["ra"] == alert["candidate"]["ra"] and rec["passed_at"].tzinfo is not None
    assert len(rec["prv_candidates"]) == len([p for p in aux["prv_candidates"]
                                              if p["programid"] in (1, 2)
                                              and alert["candidate"]["jd"] - p["jd"] < 365])
    assert rec["cutoutScience"]["stampData"] == alert["cutoutScience"]["stampData"]
    assert gzip.decompress(rec["cutoutDifference"]["stampData"])[:6] == b"SIMPLE"
    assert json.loads(rec["filter_output"])["candid"] == 2475433850015010009
    assert rec["classifications"]["acai_h_version"] == alert["classifications"]["acai_h_version"]


def test_deliver_command(cfg):
    """`kowalski filter deliver --once --kafka` on this module's outbox (re-queued to a new topic)."""
    import os

    outbox = db.filter_outbox(cfg, "ztf")
    n = outbox.count_documents({})
    outbox.update_many({}, {"$set": {"pending": ["kafka"], "next_at.kafka": dt.datetime(2000, 1, 1)}})
    topic = f"kowalski_filter_cli{uuid.uuid4().hex[:8]}_{{filter_id}}"
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": cfg["database"]["name"], "KOWALSKI_DELIVERY__KAFKA__TOPIC": topic}
    r = subprocess.run([sys.executable, "-m", "kowalski.cli", "filter", "deliver", "--once", "--kafka"], env=env,
                       cwd=str(ROOT), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert n == len(passing(cfg, 0.5)) + len(passing(cfg, 0.9999))
    assert r.stdout.strip() == f"ztf: kafka delivered {n} failed 0; 0 still pending"
    expected = passing(cfg, 0.5)
    assert sorted(r["candid"] for r in read_topic(cfg, topic.format(filter_id=1), len(expected))) == expected
    r = subprocess.run([sys.executable, "-m", "kowalski.cli", "filter", "deliver", "--once", "--survey", "nope",
                        "--kafka"], env=env, cwd=str(ROOT), capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "kowalski: error: unknown survey 'nope'; configured: " + \
        ", ".join(cfg["surveys"])
