"""The alert broker's main loop: Kafka → Dask workers → durable store → offset commit.

Delivery guarantee: at-least-once from Kafka plus idempotent writes (unique candid, merged aux
history) = no alert lost or duplicated across crashes and restarts. Concretely:
- auto-commit is off; a batch's offsets are committed only after its alerts and their object
  histories are written (and its bad messages are in the dead-letter topic);
- batches are completed in the order they were consumed, so committed offsets only move forward
  over work that is durable;
- a crash re-delivers at most the uncommitted batches, whose re-insertion is a no-op.

Two threads: the main one consumes, submits batches to Dask and commits; the writer stores
finished batches (in consumption order), dead-letters their bad messages and hands their
offsets back for the commit (librdkafka calls stay on the main thread). Storing while the next
batches are consumed and computed keeps the workers busy (a main thread that also stored left
them idle ~20% of the time). Backpressure: at most `max_inflight` batches are submitted and not
yet stored; then the main thread waits. A database outage pauses the assigned partitions (the
main thread's polls keep the group membership alive) and the writer retries with backoff until
the database answers again.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from broker import metrics
from kowalski import db
from kowalski.config import Config

log = logging.getLogger("kowalski.broker")

DB_DOWN_ERRORS = db.DatabaseUnavailable


@dataclass
class Batch:
    survey: str
    messages: list  # confluent_kafka.Message
    future: object
    rejected: list = field(default_factory=list)  # dead-lettered before processing (too large)
    submitted: float = field(default_factory=time.monotonic)


def librdkafka_regex(pattern: str) -> str:
    """librdkafka's own regex engine lacks the shorthand classes Python has: spell them out
    (otherwise the subscription silently matches nothing)."""
    return pattern.replace(r"\d", "[0-9]").replace(r"\w", "[A-Za-z0-9_]").replace(r"\s", "[ \t]")


def topic_patterns(config: Config, survey: str) -> str:
    from kowalski.surveys import get_survey

    pattern = get_survey(survey, config).topic_pattern
    return pattern if pattern.startswith("^") else "^" + pattern


class AlertBroker:
    def __init__(self, config: Config, surveys: list[str], group_id: str | None = None,
                 scheduler_address: str | None = None, metrics_port: int | None = None, write: bool = True,
                 verify_catalogs: bool = True):
        """``write=False`` (benchmarks only) does everything but the database writes;
        ``verify_catalogs=False`` skips counting the cross-match catalogs at start (benchmarks
        whose catalogs were just built)."""
        bc = config["broker"]
        self.config = config
        self.surveys = [s.lower() for s in surveys]
        self.patterns = {s: re.compile(topic_patterns(config, s)) for s in self.surveys}
        self.group_id = group_id or bc["group_id"]
        self.batch_size = int(bc["batch_size"])
        self.max_inflight = int(bc["max_inflight"])
        self.poll_timeout = float(bc["poll_timeout_s"])
        self.dlq_suffix = bc["dlq_suffix"]
        self.max_message_bytes = int(bc.get("max_message_bytes", 10 * 1024 * 1024))
        self.scheduler_address = scheduler_address or bc["dask"].get("scheduler_address")
        self.metrics_port = bc["metrics"]["port"] if metrics_port is None else metrics_port
        self.write = write
        self.verify_catalogs = verify_catalogs
        self.stop_event = threading.Event()
        self.inflight: deque[Batch] = deque()  # submitted, not yet stored; the writer pops them
        self.cond = threading.Condition()  # guards inflight
        self.writer_stop = threading.Event()
        self.writer_error: BaseException | None = None
        self.to_commit: dict[tuple[str, int], int] = {}  # stored, not yet committed (main thread commits)
        self.paused = False  # set by the writer while the database is away
        self._consumer_paused = False  # what the main thread has applied to the consumer
        from broker.filters.runner import FilterRunner  # active user filters -> durable outbox
        self.filter_runners = {s: FilterRunner(config, s) for s in self.surveys} if write else {}
        self.stats = metrics.BrokerStats(self.surveys)
        self.client = self.cluster = None
        self.consumer = self.producer = None
        self.http = None

    # --- set-up ---------------------------------------------------------------------------
    def _start_dask(self):
        import dask
        from dask.distributed import Client, LocalCluster

        dc = self.config["broker"]["dask"]
        if self.scheduler_address:
            self.client = Client(self.scheduler_address)
        else:
            # Dask's statistical profiler samples each worker's stack every 10 ms; on two cores
            # that is CPU the alerts need (measured: ~10% more alerts/s without it)
            dask.config.set({"distributed.worker.profile.enabled": bool(dc.get("profile", False))})
            self.cluster = LocalCluster(n_workers=int(dc["n_workers"]), threads_per_worker=1, processes=True,
                                        dashboard_address=dc.get("dashboard_address") or ":0",
                                        memory_limit=dc.get("memory_limit", "auto"), silence_logs=logging.WARNING)
            self.client = Client(self.cluster)
        log.info("dask: %s", self.client)
        from broker.pipeline import warm_kernel
        for survey in self.surveys:  # models and catalogs loaded before the first alert arrives
            self.client.run(warm_kernel, survey, self.config)

    def _start_kafka(self):
        servers = self.config["kafka"]["bootstrap_servers"]
        self.consumer = Consumer({
            "bootstrap.servers": servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 3_600_000,  # a database outage may hold a batch for long
            "topic.metadata.refresh.interval.ms": 10_000,  # pick up new nightly topics fast
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        })
        self.producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True,
                                  "message.max.bytes": 16 * 1024 * 1024})
        self.consumer.subscribe([librdkafka_regex(p.pattern) for p in self.patterns.values()],
                                on_revoke=self._on_revoke)
        log.info("subscribed group=%s patterns=%s", self.group_id, [p.pattern for p in self.patterns.values()])

    def _survey_of(self, topic: str) -> str | None:
        for s, p in self.patterns.items():
            if p.match(topic):
                return s
        return None

    # --- main loop ------------------------------------------------------------------------
    def _ensure_database(self) -> None:
        """Create what the no-duplicates guarantee relies on (the unique alert id index, the aux
        and outbox collections) before consuming anything, whatever database this is: a new one, one
        `kowalski up` never saw, one whose index was dropped. Waits for a database that is not up
        yet; refuses to start when repeated alerts block the unique index (DuplicateIdsError)."""

        delay = 1.0
        while not self.stop_event.is_set():
            try:
                for survey in self.surveys:
                    db.ensure_survey(self.config, survey)
                return
            except db.DuplicateIdsError as exc:
                log.error("refusing to consume: %s", exc)
                raise
            except DB_DOWN_ERRORS as exc:
                log.warning("database unavailable at start (%s); retrying in %.0f s", str(exc).split(",")[0][:160],
                            delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 30.0)

    def _start(self) -> bool:
        """Everything before the first poll; False when stopped meanwhile."""
        from broker.stages.crossmatch import CrossMatcher
        if self.metrics_port is not None and self.metrics_port >= 0:
            # first: /healthz answers "starting" (503) while the database is awaited, models load and
            # Dask starts, and a port already taken fails the start at once
            self.http = serve_http(self, self.config["broker"]["metrics"]["host"], self.metrics_port)
        if self.write:
            self._ensure_database()
            if self.stop_event.is_set():  # stopped while waiting for the database
                return False
        for survey in self.surveys:  # build missing catalog caches once, not on every worker at once
            CrossMatcher(self.config, survey).warm(trees=False)
        if self.verify_catalogs:
            threading.Thread(target=self._verify_catalogs, daemon=True, name="xmatch-verify").start()
        self._start_dask()
        self._start_kafka()
        return True

    def run(self) -> None:
        try:
            started = self._start()
        except BaseException:
            self.stats.state = "stopped"
            self.close()
            raise
        if not started:
            self.stats.state = "stopped"
            self.close()
            return
        self.stats.state = "running"
        writer = threading.Thread(target=self._writer, daemon=True, name="broker-writer")
        writer.start()
        try:
            while not self.stop_event.is_set() and self.writer_error is None:
                self._commit_stored()
                self._apply_pause()
                with self.cond:  # backpressure: wait for the writer to store a batch
                    while len(self.inflight) >= self.max_inflight and not self.stop_event.is_set() \
                            and self.writer_error is None and not self.to_commit \
                            and self.paused == self._consumer_paused:
                        self.cond.wait(0.2)
                if len(self.inflight) >= self.max_inflight:
                    continue  # woken to commit or to pause
                if self.stop_event.is_set() or self.writer_error is not None:
                    break
                msgs = self.consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
                if msgs:
                    self._submit(msgs)
            if self.writer_error is None:
                log.info("stopping: draining %d in-flight batches", len(self.inflight))
                self._drain()
        finally:
            self.writer_stop.set()
            with self.cond:
                self.cond.notify_all()
            writer.join(60)
            self.stats.state = "stopped"
            self.close()
        if self.writer_error is not None:
            raise self.writer_error

    def _writer(self) -> None:
        """Store finished batches in consumption order; their offsets go to the main thread."""
        try:
            while True:
                with self.cond:
                    while not self.inflight and not self.writer_stop.is_set():
                        self.cond.wait(0.2)
                    if not self.inflight:
                        return
                    batch = self.inflight[0]
                self._complete(batch)
                with self.cond:
                    self.inflight.popleft()
                    self.cond.notify_all()
        except BaseException as exc:  # a bug: stop the broker (uncommitted batches are redelivered)
            log.exception("broker writer failed; stopping")
            self.writer_error = exc
            with self.cond:
                self.cond.notify_all()

    def _verify_catalogs(self) -> None:
        """Catch catalogs appended to by other tools while no broker ran (counting scans each
        catalog on the local database, so it is done once, off the main loop)."""
        from broker.stages.crossmatch import verify_catalogs
        for survey in self.surveys:
            try:
                verify_catalogs(self.config, survey)
            except Exception as exc:  # the caches in use stay valid for their collection's UUID
                log.warning("xmatch: verifying the %s catalogs failed: %s", survey, exc)

    def _submit(self, msgs: list) -> None:
        from broker.pipeline import process_messages

        groups: dict[str, list] = {}
        rejected: list = []  # dead-lettered here; committed with the last batch of this poll
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka: %s", err)
                continue
            survey = self._survey_of(m.topic())
            if survey is None:  # cannot happen with our subscription; never drop silently
                self._dead_letter(m, f"topic {m.topic()} matches no configured survey", "unknown")
                continue
            if len(m.value() or b"") > self.max_message_bytes:  # never shipped to a worker or stored
                rejected.append(m)
                self._dead_letter(m, f"message of {len(m.value())} bytes exceeds broker.max_message_bytes "
                                     f"({self.max_message_bytes})", survey)
                continue
            groups.setdefault(survey, []).append(m)
        # Batches complete in submission order, so the rejected offsets ride with the LAST batch of
        # this poll: committing them cannot pass over a message of this poll not yet stored.
        last = len(groups) - 1
        for i, (survey, ms) in enumerate(groups.items()):
            values = [m.value() or b"" for m in ms]
            fut = self.client.submit(process_messages, survey, values, self.config, pure=False, retries=1)
            with self.cond:
                self.inflight.append(Batch(survey, ms, fut, rejected=rejected if i == last else []))
                self.cond.notify_all()
        if rejected and not groups:
            with self.cond:
                self.inflight.append(Batch(self._survey_of(rejected[0].topic()) or "unknown", [], None,
                                           rejected=rejected))
                self.cond.notify_all()

    def _complete(self, batch: Batch) -> None:
        from broker.pipeline import process_messages

        if batch.future is None:  # only messages dead-lettered at submit (too large)
            self._flush_dead_letters()
            self._commit(batch.rejected)
            return
        try:
            result = batch.future.result()
        except Exception as exc:  # a worker died twice on this batch: do it here, not lose it
            log.error("batch of %d %s alerts failed on dask (%s); processing it locally", len(batch.messages),
                      batch.survey, exc)
            values = [m.value() or b"" for m in batch.messages]
            result = self._with_db_retry(lambda: process_messages(batch.survey, values, self.config))
        t0 = time.monotonic()
        counts = {**self._store_with_retry(batch.survey, result), "failed": len(result.failed)}
        if self.filter_runners:  # passing alerts reach the outbox before the offsets are committed
            self._with_db_retry(lambda: self.filter_runners[batch.survey].process(result.alerts, result.aux))
        t_store = time.monotonic() - t0
        for idx, reason in result.failed:
            self._dead_letter(batch.messages[idx], reason, batch.survey)
        if result.failed or batch.rejected:
            self._flush_dead_letters()
        self._commit(batch.messages + batch.rejected)
        now_ms = time.time() * 1000
        failed = {i for i, _ in result.failed}
        latencies = [(now_ms - m.timestamp()[1]) / 1000 for i, m in enumerate(batch.messages)
                     if i not in failed and m.timestamp()[1] > 0]
        self.stats.record_batch(batch.survey, len(batch.messages), counts, result.timings, t_store, latencies)

    def _store_with_retry(self, survey: str, result) -> dict:
        from broker.pipeline import store_batch

        if not self.write:
            return {"inserted": len(result.alerts)}
        return self._with_db_retry(lambda: store_batch(self.config, survey, result))

    def _with_db_retry(self, write):
        """Run an idempotent database step until it succeeds; while the database is away the
        assigned partitions are paused (nothing is acknowledged that is not stored)."""
        delay = 0.5
        while True:
            try:
                out = write()
                if self.paused:
                    self._resume()
                return out
            except DB_DOWN_ERRORS as exc:
                if not self.paused:
                    log.error("database unavailable (%s): pausing consumption until it returns",
                              str(exc).split(",")[0][:160])
                    self._pause()
                    self.stats.db_outages += 1
                time.sleep(delay)  # the main thread's polls keep the group membership alive
                delay = min(delay * 2, 5.0)

    def _pause(self):
        """Called by the writer; the main thread applies it (librdkafka calls from the writer
        thread wait for the main thread's poll to return, like the commit)."""
        self.paused = True
        self.stats.state = "paused: database unavailable"

    def _resume(self):
        self.paused = False
        self.stats.state = "running"
        log.info("database is back: consumption resumed")

    def _apply_pause(self) -> None:
        """Main thread: make the consumer's paused state follow the writer's."""
        if self.paused != self._consumer_paused:
            parts = self.consumer.assignment()
            (self.consumer.pause if self.paused else self.consumer.resume)(parts)
            self._consumer_paused = self.paused

    def _dead_letter(self, msg, reason: str, survey: str) -> None:
        topic = msg.topic() + self.dlq_suffix
        headers = {"reason": reason, "source_topic": msg.topic(), "source_partition": str(msg.partition()),
                   "source_offset": str(msg.offset()), "survey": survey}
        log.warning("dead letter %s[%d]@%d -> %s: %s", msg.topic(), msg.partition(), msg.offset(), topic, reason)
        self.producer.produce(topic, msg.value() or b"", key=msg.key(), headers=list(headers.items()))
        self.stats.dead_letters += 1

    def _flush_dead_letters(self) -> None:
        """A bad message's offset is committed only once Kafka has its dead letter: while Kafka is
        away, keep flushing (the main thread's backpressure holds new batches meanwhile)."""
        while (left := self.producer.flush(10)) and not self.writer_stop.is_set():
            log.warning("kafka: %d dead letters not yet acknowledged; retrying before the commit", left)

    def _commit(self, msgs: list) -> None:
        """Hand a stored batch's offsets to the main thread: a synchronous commit from another
        thread waits for the consumer's own polling and stalls (seen with librdkafka)."""
        with self.cond:
            for m in msgs:
                key = (m.topic(), m.partition())
                self.to_commit[key] = max(self.to_commit.get(key, -1), m.offset())
            self.cond.notify_all()

    def _commit_stored(self) -> None:
        """Commit (main thread) the offsets of everything the writer has stored so far."""
        with self.cond:
            last, self.to_commit = self.to_commit, {}
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:  # Kafka away: keep them for the next try (at-least-once)
                log.warning("kafka: commit failed (%s); retrying", exc)
                with self.cond:
                    for key, o in last.items():
                        self.to_commit[key] = max(self.to_commit.get(key, -1), o)
                time.sleep(0.5)

    def _drain(self) -> None:
        """Wait (in the main thread) until the writer has stored every submitted batch; commit."""
        with self.cond:
            while self.inflight and self.writer_error is None:
                self.cond.wait(0.2)
        self._commit_stored()

    def _on_revoke(self, consumer, partitions) -> None:
        """Finish and commit what we hold before partitions move to another member."""
        if self.inflight:
            log.info("partitions revoked: completing %d in-flight batches first", len(self.inflight))
            self._drain()

    def stop(self, *_):
        self.stop_event.set()

    def close(self) -> None:
        for closer in (lambda: self.consumer and self.consumer.close(),
                       lambda: self.producer and self.producer.flush(10),
                       lambda: self.client and self.client.close(),
                       lambda: self.cluster and self.cluster.close(),
                       lambda: self.http and (self.http.shutdown(), self.http.server_close())):
            try:
                closer()
            except Exception as exc:  # shutting down: report, keep closing the rest
                log.warning("shutdown: %s", exc)


def serve_http(broker: AlertBroker, host: str, port: int) -> ThreadingHTTPServer:
    """/metrics (Prometheus), /healthz and /stats (JSON) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/metrics"):
                body, ctype = metrics.prometheus_text(), metrics.PROMETHEUS_CONTENT_TYPE
                code = 200
            elif self.path.startswith("/healthz"):
                ok = broker.stats.state == "running"
                body = json.dumps({"status": "ok" if ok else broker.stats.state}).encode()
                ctype, code = "application/json", 200 if ok else 503
            elif self.path.startswith("/stats"):
                q = parse_qs(urlsplit(self.path).query)  # ?last=N: latency over the last N alerts only
                last = int(q["last"][0]) if q.get("last", [""])[0].isdigit() else None
                body, ctype, code = json.dumps(broker.stats.snapshot(last)).encode(), "application/json", 200
            else:
                body, ctype, code = b'{"status": "error", "message": "not found"}', "application/json", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="broker-http").start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server


def run_broker(config: Config, surveys: list[str], **kwargs) -> None:
    broker = AlertBroker(config, surveys, **kwargs)
    signal.signal(signal.SIGTERM, broker.stop)
    signal.signal(signal.SIGINT, broker.stop)
    broker.run()
