"""Fault injection on the real services: no alert lost or stored twice, whatever fails.

The module runs its own database server and Kafka (free ports, a private ``var/``), so it can kill
them without touching the services the rest of the suite shares. Every case starts the broker as a
real process (``kowalski broker``) on a FRESH database that nothing prepared (the broker must
ensure its own unique index), streams the real 20231012 ZTF alerts with synthetic copies and bad
messages interleaved at random offsets, runs the delivery loop to a SkyPortal stand-in, injects
its fault at random moments, and ends with exact counts:

* alerts stored = distinct alert ids produced (nothing lost, nothing twice);
* one aux document per object, no history point stored twice;
* every bad message in the dead-letter topic (by source offset) and no good one there;
* every alert the filter passes delivered to SkyPortal exactly once (candidates posted once each).

Kill times are drawn from a seeded generator; the seed is printed and is in every assertion
message (``KOWALSKI_TEST_FAULT_SEED=<seed>`` replays a run).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import fastavro
import psutil
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from pymongo import UpdateOne

from broker.delivery import Delivery
from broker.produce import read_alert_files, synthetic_copy
from kowalski import db
from kowalski.config import load_config
from kowalski.services.database import DatabaseService
from kowalski.services.kafka import KafkaService
from tests.api.conftest import free_port
from tests.broker.test_broker_kafka import committed
from tests.conftest import ROOT, shared_data
from tests.skyportal_standin import SkyPortalStandIn

NIGHT = "alerts/kowalski/ztf_alerts/20231012"
SEED = int(os.environ.get("KOWALSKI_TEST_FAULT_SEED") or random.SystemRandom().randrange(2**31))
PASSING = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1, "objectId": 1}}]


class Exited(AssertionError):
    """A process that was to come up has exited: no point waiting for it."""


def _wait(predicate, timeout=300.0, every=0.3, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exited:
            raise
        except Exception:  # noqa: BLE001 - a service being restarted answers with errors meanwhile
            pass
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (seed {SEED})")


# --- the private stack --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory, services):
    """A database server and a Kafka of this module's own, so they can be killed."""
    print(f"\nfault-injection seed: {SEED} (KOWALSKI_TEST_FAULT_SEED={SEED} replays it)")
    main = services
    var = tmp_path_factory.mktemp("faults")
    dbp, kp, kc = free_port(), free_port(), free_port()
    env = {**os.environ,
           "KOWALSKI_PATHS__VAR": str(var),
           "KOWALSKI_MONGODB_URI": f"mongodb://127.0.0.1:{dbp}/",
           "KOWALSKI_DATABASE__EMBEDDED__PORT": str(dbp),
           "KOWALSKI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kp}",
           "KOWALSKI_KAFKA__EMBEDDED__PORT": str(kp),
           "KOWALSKI_KAFKA__EMBEDDED__CONTROLLER_PORT": str(kc),
           "KOWALSKI_KAFKA__EMBEDDED__LIB_DIR": str(main.path("kafka.embedded.lib_dir")),
           "KOWALSKI_KAFKA__EMBEDDED__HEAP": "512m"}
    cfg = load_config(environ=env)
    assert cfg["database"]["uri"].endswith(f":{dbp}/") and cfg.var_dir == var
    svcs = [DatabaseService(cfg), KafkaService(cfg)]
    try:
        for s in svcs:
            s.start()
        yield cfg, env
    finally:
        for s in reversed(svcs):
            s.stop()


# --- what is produced ---------------------------------------------------------------------------

def _container(schema, records) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records)
    return buf.getvalue()


def _without(schema: dict, path: list[str]) -> dict:
    """A copy of an Avro record schema without the field at ``path`` (e.g. candidate.ra)."""
    schema = json.loads(json.dumps(schema))
    node = schema
    for name in path[:-1]:
        field = next(f for f in node["fields"] if f["name"] == name)
        node = field["type"] if isinstance(field["type"], dict) else next(t for t in field["type"] if isinstance(t, dict))
    node["fields"] = [f for f in node["fields"] if f["name"] != path[-1]]
    return schema


def bad_messages(real: bytes) -> dict[str, bytes]:
    """The issue's bad inputs, each of which must reach the DLQ with its reason."""
    reader = fastavro.reader(io.BytesIO(real))
    schema, rec = reader.writer_schema, next(iter(reader))
    no_candid = {k: v for k, v in rec.items() if k != "candid"}
    no_ra = {**rec, "candidate": {k: v for k, v in rec["candidate"].items() if k != "ra"}}
    other = {"type": "record", "name": "alert", "namespace": "ztf", "doc": "schema 9.9 (unknown)",
             "fields": [{"name": "schemavsn", "type": "string"}, {"name": "objectId", "type": "string"},
                        {"name": "payload", "type": "bytes"}]}
    return {
        "truncated Avro": real[: len(real) // 3],
        "unknown schema version": _container(other, [{"schemavsn": "9.9", "objectId": "ZTF23aaaaaaa",
                                                      "payload": b"\x00" * 64}]),
        "alert without candid": _container(_without(schema, ["candid"]), [no_candid]),
        "alert without coordinates": _container(_without(schema, ["candidate", "ra"]), [no_ra]),
        "message over 10 MB": b"Obj\x01" + os.urandom(10 * 1024 * 1024 + 4096),
        "non-UTF-8 payload": bytes(range(255, -1, -1)) * 8,
    }


class Stream:
    """The alerts of one case: real + synthetic copies, bad messages at seeded random offsets."""

    def __init__(self, rng: random.Random, copies: int):
        real = [data for _, data in read_alert_files([shared_data(NIGHT)])]
        good = list(real) + [synthetic_copy(d, k) for k in range(1, copies + 1) for d in real]
        rng.shuffle(good)
        bad = bad_messages(real[0])
        self.messages = list(good)
        for name, data in bad.items():
            self.messages.insert(rng.randrange(len(self.messages) + 1), data)
        self.bad_offsets = {i: name for i, data in enumerate(self.messages) for name, b in bad.items() if data is b}
        self.candids, self.objects, self.passing, self.history = set(), set(), set(), {}
        for data in good:
            for r in fastavro.reader(io.BytesIO(data)):
                self.candids.add(r["candid"])
                self.objects.add(r["objectId"])
                if r["candidate"]["drb"] is not None and r["candidate"]["drb"] > 0.5:
                    self.passing.add((r["objectId"], r["candid"]))
        assert len(self.bad_offsets) == len(bad) and len(self.candids) == len(good)


class Producing(threading.Thread):
    """Publishes the stream at a steady rate while the faults happen (Kafka may be away)."""

    def __init__(self, servers: str, topic: str, messages: list[bytes], rate: float):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": servers, "message.max.bytes": 16 * 1024 * 1024,
                           "enable.idempotence": True, "message.timeout.ms": 600_000})
        self.topic, self.messages, self.rate = topic, messages, rate
        self.sent = 0

    def run(self):
        t0 = time.monotonic()
        for i, data in enumerate(self.messages):
            self.p.produce(self.topic, data, partition=0)
            self.p.poll(0)
            self.sent = i + 1
            time.sleep(max(0.0, t0 + (i + 1) / self.rate - time.monotonic()))
        while self.p.flush(5):
            pass


# --- the broker as a real process ---------------------------------------------------------------

class BrokerProcess:
    def __init__(self, stack_env: dict, cfg, topic: str, group: str, workers: int):
        self.port = free_port()
        self.env = {**stack_env, "KOWALSKI_DATABASE__NAME": cfg["database"]["name"],
                    "KOWALSKI_SURVEYS__ZTF__TOPIC_PATTERN": f"^{re.escape(topic)}$",
                    "KOWALSKI_BROKER__DASK__N_WORKERS": str(workers), "KOWALSKI_BROKER__BATCH_SIZE": "8",
                    "KOWALSKI_FILTERS__REFRESH_S": "1"}
        self.cmd = [sys.executable, "-m", "kowalski.cli", "broker", "--survey", "ztf", "--group-id", group,
                    "--metrics-port", str(self.port)]
        self.log = cfg.var_dir / "log" / f"broker-{cfg['database']['name']}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.starts = 0

    def start(self):
        for attempt in range(3):
            if attempt:  # free_port() chose a port another process took before the broker bound it
                self.port = free_port()
                self.cmd[-1] = str(self.port)
            log_size = self.log.stat().st_size if self.log.exists() else 0
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, start_new_session=True, stdout=logf,
                                             stderr=subprocess.STDOUT)
            self.starts += 1
            t0 = time.monotonic()
            try:
                _wait(lambda: self.stats()["state"] == "running", what=f"broker running (see {self.log})")
                print(f"broker start {self.starts}: running after {time.monotonic() - t0:.1f} s")
                return
            except AssertionError as exc:  # CI keeps no files: the log's end goes into the report
                this_start = self.log.read_text(errors="replace")[log_size:]
                if isinstance(exc, Exited) and "Address already in use" in this_start:
                    continue
                raise AssertionError(f"{exc}\n--- the end of {self.log.name}:\n{self.log_tail()}") from None
        raise AssertionError(f"the broker's metrics port was taken 3 times in a row; see {self.log}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stats(self) -> dict:
        if self.proc.poll() is not None:
            raise Exited(f"broker exited with {self.proc.returncode}; see {self.log}")
        return requests.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()

    def sigkill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # the broker and its Dask workers
        self.proc.wait(60)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(180)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                raise AssertionError(f"broker did not stop on SIGTERM; see {self.log}") from None
        return self.proc.returncode if self.proc else 0


def read_dlq(cfg, topic: str) -> list[dict]:
    """Every record of ``<topic>.dlq`` (to its end offset) as its headers."""
    c = Consumer({"bootstrap.servers": cfg["kafka"]["bootstrap_servers"], "group.id": f"dlq-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "fetch.message.max.bytes": 16 * 1024 * 1024})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic + ".dlq", 0), timeout=10)
        c.assign([TopicPartition(topic + ".dlq", 0, 0)])
        out = []
        deadline = time.monotonic() + 60
        while len(out) < high and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                out.append({k: v.decode() for k, v in (m.headers() or [])})
        assert len(out) == high, f"read {len(out)} of {high} dead letters (seed {SEED})"
        return out
    finally:
        c.close()


# --- one case -----------------------------------------------------------------------------------

class Case:
    """A fresh database (not prepared by anyone), a topic, a filter, the broker, delivery."""

    def __init__(self, stack, name: str, copies: int = 9, workers: int = 1, skyportal_up: bool = True):
        cfg_base, self.stack_env = stack
        self.rng = random.Random(f"{SEED}:{name}")
        dbname = f"kowalski_fault_{name}_{uuid.uuid4().hex[:6]}"
        self.cfg = load_config(environ={**self.stack_env, "KOWALSKI_DATABASE__NAME": dbname})
        self.topic = f"ztf_20231012_programid1_f{uuid.uuid4().hex[:10]}"
        self.group = f"fault-{uuid.uuid4().hex[:8]}"
        self.stream = Stream(self.rng, copies)
        self.sp = SkyPortalStandIn(token="faults", port=free_port(),
                                   groups={1: {"name": "G", "filters": [{"id": 1, "name": "faults"}]}})
        self.skyportal_up = skyportal_up
        self.cfg["delivery"].update({"retry_base_s": 0.2, "retry_max_s": 1})
        self.cfg["delivery"]["skyportal"].update({"enabled": True, "url": self.sp.url, "token": "faults"})
        self.cfg["delivery"]["kafka"]["enabled"] = False
        self.broker = BrokerProcess({**self.stack_env, "KOWALSKI_DELIVERY__SKYPORTAL__ENABLED": "true",
                                     "KOWALSKI_DELIVERY__KAFKA__ENABLED": "false"},
                                    self.cfg, self.topic, self.group, workers)  # its outbox items await SkyPortal
        self.stop_delivery = threading.Event()
        self.delivery_thread = None

    def __enter__(self):
        assert db.get_db(self.cfg).list_collection_names() == []  # nothing prepared this database
        # the filter document as the API stores it (the filters collection is the API's to index)
        db.filters_collection(self.cfg).insert_one({
            "filter_id": 1, "group_id": 1, "catalog": "ZTF_alerts", "permissions": [1, 2], "active": True,
            "autosave": False, "auto_followup": {}, "update_annotations": False, "active_fid": "v00001",
            "fv": [{"fid": "v00001", "pipeline": json.dumps(PASSING), "created_at": dt.datetime(2026, 1, 1)}]})
        if self.skyportal_up:
            self.sp.start()
        self.producing = Producing(self.cfg["kafka"]["bootstrap_servers"], self.topic, self.stream.messages, rate=30)
        self.producing.start()
        self.broker.start()
        self.delivery_thread = threading.Thread(target=self._deliver, daemon=True)
        self.delivery_thread.start()
        return self

    def _deliver(self):
        delivery = Delivery(self.cfg, "ztf")
        try:
            delivery.run(self.stop_delivery, 0.2)
        finally:
            delivery.close()

    def __exit__(self, *exc):
        self.stop_delivery.set()
        if self.delivery_thread:
            self.delivery_thread.join(60)
        try:
            self.broker.stop()
        finally:
            self.sp.stop()
            if exc[0] is None:
                db.client(self.cfg).drop_database(self.cfg["database"]["name"])

    def random_moment(self, lo=0.3, hi=2.5):
        time.sleep(self.rng.uniform(lo, hi))

    def finish(self):
        """Wait for the end state, stop the broker cleanly, and check the exact counts."""
        total = len(self.stream.messages)
        _wait(lambda: self.producing.sent == total and not self.producing.is_alive(), what="everything produced")
        _wait(lambda: committed(self.cfg, self.group, self.topic) == total, timeout=600,
              what=f"all {total} offsets committed (see {self.broker.log})")
        outbox = db.filter_outbox(self.cfg, "ztf")
        _wait(lambda: outbox.count_documents({"pending": "skyportal"}) == 0
              and outbox.count_documents({}) == len(self.stream.passing), timeout=600, what="every delivery")
        assert self.broker.stop() == 0, f"broker did not exit cleanly; see {self.broker.log} (seed {SEED})"
        self.check()

    def check(self):
        s, d, msg = self.stream, db.get_db(self.cfg), f"(seed {SEED}, log {self.broker.log})"
        alerts = d["ZTF_alerts"]
        candids = [a["candid"] for a in alerts.find({}, {"candid": 1})]
        assert len(candids) == len(set(candids)) == len(s.candids), msg
        assert set(candids) == s.candids, msg
        assert next(ix for ix in alerts.list_indexes() if ix["name"] == "candid_unique").get("unique"), msg
        aux_ids = [x["_id"] for x in d["ZTF_alerts_aux"].find({}, {"_id": 1})]
        assert sorted(aux_ids) == sorted(s.objects), msg  # one aux document per object
        for x in d["ZTF_alerts_aux"].find({}, {"prv_candidates": 1, "fp_hists": 1}):
            for arr in ("prv_candidates", "fp_hists"):
                points = [json.dumps(p, sort_keys=True, default=str) for p in x.get(arr) or []]
                assert len(points) == len(set(points)), f"{x['_id']} {arr} holds a point twice {msg}"
        dlq = read_dlq(self.cfg, self.topic)
        offsets = {int(h["source_offset"]) for h in dlq}
        assert offsets == set(s.bad_offsets), f"DLQ {sorted(offsets)} != bad {sorted(s.bad_offsets)} {msg}"
        assert all(h["reason"] and h["source_topic"] == self.topic for h in dlq), msg
        big = [h for h in dlq if s.bad_offsets[int(h["source_offset"])] == "message over 10 MB"]
        assert big and "exceeds broker.max_message_bytes" in big[0]["reason"], msg
        outbox = db.filter_outbox(self.cfg, "ztf")
        assert {(o["objectId"], o["candid"]) for o in outbox.find()} == s.passing, msg
        posted = Counter((c["body"]["id"], c["body"]["passing_alert_id"]) for c in self.sp.calls("POST", "/api/candidates"))
        assert set(posted) == s.passing, msg
        assert set(posted.values()) == {1}, f"candidates posted more than once: {posted.most_common(3)} {msg}"
        assert self.sp.invalid == [], msg
        return posted


# --- the cases ----------------------------------------------------------------------------------

def test_broker_sigkilled_several_times_on_a_fresh_database(stack):
    with Case(stack, "kill", copies=11) as case:
        uncommitted_at_kill = []
        for _ in range(3):
            case.random_moment()
            produced = case.producing.sent
            case.broker.sigkill()
            uncommitted_at_kill.append(produced - committed(case.cfg, case.group, case.topic))
            case.broker.start()
        case.finish()
    # at least one kill came while the broker held work it had not committed (not vacuous)
    assert max(uncommitted_at_kill) > 0, f"{uncommitted_at_kill} (seed {SEED})"
    assert case.broker.starts == 4


def _kill_and_restart_mid_stream(stack, name: str, service_class):
    """SIGKILL one of the stack's services once alerts flow, restart it a few seconds later."""
    service = service_class(stack[0])
    with Case(stack, name) as case:
        _wait(lambda: case.broker.stats()["surveys"]["ztf"]["stored"] > 0, what="some alerts stored")
        case.random_moment()
        os.killpg(service.pid(), signal.SIGKILL)
        _wait(lambda: service.pid() is None, what=f"{service.name} gone")
        case.random_moment(1.0, 4.0)
        service.start()
        case.finish()
    assert case.broker.starts == 1  # the broker rode the outage out


def test_database_killed_and_restarted_mid_stream(stack):
    _kill_and_restart_mid_stream(stack, "db", DatabaseService)


def test_kafka_killed_and_restarted_mid_stream(stack):
    _kill_and_restart_mid_stream(stack, "kafka", KafkaService)


def _dask_workers(broker_pid: int) -> list[psutil.Process]:
    """The Dask worker processes of the broker's LocalCluster (its nannies live in the broker
    process and spawn each worker with multiprocessing)."""
    return [p for p in psutil.Process(broker_pid).children() if "spawn_main" in " ".join(p.cmdline())]


def test_one_dask_worker_killed_mid_batch(stack):
    with Case(stack, "worker", workers=2) as case:
        _wait(lambda: len(_dask_workers(case.broker.proc.pid)) == 2, what="two Dask workers")
        _wait(lambda: case.broker.stats()["surveys"]["ztf"]["stored"] > 0, what="some alerts stored")
        case.random_moment(0.1, 1.5)
        victim = case.rng.choice(_dask_workers(case.broker.proc.pid))
        victim.kill()
        victim.wait(30)
        case.finish()
    assert case.broker.starts == 1


def test_skyportal_down_then_back(stack):
    with Case(stack, "skyportal", skyportal_up=False) as case:
        outbox = db.filter_outbox(case.cfg, "ztf")
        _wait(lambda: committed(case.cfg, case.group, case.topic) == len(case.stream.messages), timeout=600,
              what="everything ingested while SkyPortal is down")
        _wait(lambda: outbox.count_documents({"attempts.skyportal": {"$gte": 2}}) > 0, what="failed attempts")
        assert outbox.count_documents({"delivered_at.skyportal": {"$exists": True}}) == 0
        case.sp.start()
        case.finish()


def test_acknowledged_writes_survive_a_database_kill(stack):
    """What the broker's commit relies on: a write the database acknowledged is still there after
    the database process is SIGKILLed. Without journaled acknowledgements (database.journal) the
    embedded server lost the last upserted outbox batch of a burst in 4 runs of 6."""
    cfg, env = stack
    database = DatabaseService(cfg)
    name = f"kowalski_fault_journal_{uuid.uuid4().hex[:6]}"
    own = load_config(environ={**env, "KOWALSKI_DATABASE__NAME": name})
    db.close_all()  # a client built from this config (journal as configured)
    assert db.client(own).write_concern.document.get("j") is True
    coll = db.get_db(own)["burst"]
    for i in range(20):  # the broker's outbox write: upserts of new ids, unordered
        coll.bulk_write([UpdateOne({"_id": f"{i}:{k}"}, {"$setOnInsert": {"i": i, "k": k}}, upsert=True)
                         for k in range(8)], ordered=False)
    os.killpg(database.pid(), signal.SIGKILL)
    _wait(lambda: database.pid() is None, what="database gone")
    database.start()
    db.close_all()
    assert db.get_db(own)["burst"].count_documents({}) == 160
    db.client(own).drop_database(name)
