"""The alert broker's main loop: Kafka → Dask workers → durable store → offset commit.

Delivery guarantee: at-least-once from Kafka plus idempotent writes (unique candid, merged aux
history) = no alert lost or duplicated across crashes and restarts. Concretely:
- auto-commit is off; a batch's offsets are committed only after its alerts and their object
  histories are written (and its bad messages are in the dead-letter topic);
- batches are completed in the order they were consumed, so committed offsets only move forward
  over work that is durable;
- a crash re-delivers at most the uncommitted batches, whose re-insertion is a no-op.

The parts, one job each: ``broker/source.py`` (Kafka: subscription, dead letters, commits),
the Dask workers (``broker/pipeline.process_messages``), ``broker/writer.py`` (the writer thread:
store, filter step, the one database retry policy) and ``broker/health.py`` (/metrics, /healthz,
/stats). This module starts them and runs the main thread: it consumes, submits batches to Dask
and commits what the writer has stored (librdkafka calls stay on this thread). Backpressure: at
most ``max_inflight`` batches are submitted and not yet stored; then the main thread waits. A
database outage pauses the assigned partitions (the main thread's polls keep the group membership
alive) while the writer retries.
"""

from __future__ import annotations

import logging
import signal
import threading

from confluent_kafka import KafkaError

from broker import metrics
from broker.health import serve_http
from broker.source import KafkaSource
from broker.writer import Batch, BatchWriter
from kowalski import db
from kowalski.config import Config

log = logging.getLogger("kowalski.broker")


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
        self.batch_size = int(bc["batch_size"])
        self.max_inflight = int(bc["max_inflight"])
        self.poll_timeout = float(bc["poll_timeout_s"])
        self.max_message_bytes = int(bc.get("max_message_bytes", 10 * 1024 * 1024))
        self.scheduler_address = scheduler_address or bc["dask"].get("scheduler_address")
        self.metrics_port = bc["metrics"]["port"] if metrics_port is None else metrics_port
        self.write = write
        self.verify_catalogs = verify_catalogs
        self.stop_event = threading.Event()
        self.stats = metrics.BrokerStats(self.surveys)
        self.source = KafkaSource(config, self.surveys, group_id or bc["group_id"], self.stats)
        self.writer = BatchWriter(config, self.surveys, self.source, self.stats, write=write)
        self.client = self.cluster = None
        self.http = None

    @property
    def consumer(self):
        return self.source.consumer

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
            except db.DatabaseUnavailable as exc:
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
            self.http = serve_http(self.stats, self.config["broker"]["metrics"]["host"], self.metrics_port)
        if self.write:
            self._ensure_database()
            if self.stop_event.is_set():  # stopped while waiting for the database
                return False
        for survey in self.surveys:  # build missing catalog caches once, not on every worker at once
            CrossMatcher(self.config, survey).warm(trees=False)
        if self.verify_catalogs:
            threading.Thread(target=self._verify_catalogs, daemon=True, name="xmatch-verify").start()
        self._start_dask()
        self.source.start(on_revoke=self._on_revoke)
        return True

    def _verify_catalogs(self) -> None:
        """Catch catalogs appended to by other tools while no broker ran (counting scans each
        catalog on the local database, so it is done once, off the main loop)."""
        from broker.stages.crossmatch import verify_catalogs
        for survey in self.surveys:
            try:
                verify_catalogs(self.config, survey)
            except Exception as exc:  # the caches in use stay valid for their collection's UUID
                log.warning("xmatch: verifying the %s catalogs failed: %s", survey, exc)

    # --- main loop ------------------------------------------------------------------------
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
        w = self.writer
        thread = threading.Thread(target=w.run, daemon=True, name="broker-writer")
        thread.start()
        try:
            while not self.stop_event.is_set() and w.error is None:
                self._commit_stored()
                self.source.follow_pause(w.paused)
                with w.cond:  # backpressure: wait for the writer to store a batch
                    while len(w.inflight) >= self.max_inflight and not self.stop_event.is_set() \
                            and w.error is None and not w.to_commit and w.paused == self.source.paused:
                        w.cond.wait(0.2)
                if len(w.inflight) >= self.max_inflight:
                    continue  # woken to commit or to pause
                if self.stop_event.is_set() or w.error is not None:
                    break
                msgs = self.source.consume(self.batch_size, self.poll_timeout)
                if msgs:
                    self._submit(msgs)
            if w.error is None:
                log.info("stopping: draining %d in-flight batches", len(w.inflight))
                self._drain()
        finally:
            w.finish()
            thread.join(60)
            self.stats.state = "stopped"
            self.close()
        if w.error is not None:
            raise w.error

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
            survey = self.source.survey_of(m.topic())
            if survey is None:  # cannot happen with our subscription; never drop silently
                self.source.dead_letter(m, f"topic {m.topic()} matches no configured survey", "unknown")
                continue
            if len(m.value() or b"") > self.max_message_bytes:  # never shipped to a worker or stored
                rejected.append(m)
                self.source.dead_letter(m, f"message of {len(m.value())} bytes exceeds broker.max_message_bytes "
                                           f"({self.max_message_bytes})", survey)
                continue
            groups.setdefault(survey, []).append(m)
        # Batches complete in submission order, so the rejected offsets ride with the LAST batch of
        # this poll: committing them cannot pass over a message of this poll not yet stored.
        last = len(groups) - 1
        for i, (survey, ms) in enumerate(groups.items()):
            values = [m.value() or b"" for m in ms]
            fut = self.client.submit(process_messages, survey, values, self.config, pure=False, retries=1)
            self.writer.add(Batch(survey, ms, fut, rejected=rejected if i == last else []))
        if rejected and not groups:
            self.writer.add(Batch(self.source.survey_of(rejected[0].topic()) or "unknown", [], None,
                                  rejected=rejected))

    def _commit_stored(self) -> None:
        """Commit (main thread) the offsets of everything the writer has stored so far."""
        last = self.writer.take_offsets()
        if last and not self.source.commit(last):  # Kafka away: keep them for the next try
            self.writer.give_back(last)

    def _drain(self) -> None:
        """Wait (in the main thread) until the writer has stored every submitted batch; commit."""
        self.writer.wait_until_stored()
        self._commit_stored()

    def _on_revoke(self, consumer, partitions) -> None:
        """Finish and commit what we hold before partitions move to another member."""
        if self.writer.inflight:
            log.info("partitions revoked: completing %d in-flight batches first", len(self.writer.inflight))
            self._drain()

    def stop(self, *_):
        self.stop_event.set()

    def close(self) -> None:
        for closer in (lambda: self.source.consumer and self.source.consumer.close(),
                       lambda: self.source.producer and self.source.producer.flush(10),
                       lambda: self.client and self.client.close(),
                       lambda: self.cluster and self.cluster.close(),
                       lambda: self.http and (self.http.shutdown(), self.http.server_close())):
            try:
                closer()
            except Exception as exc:  # shutting down: report, keep closing the rest
                log.warning("shutdown: %s", exc)


def run_broker(config: Config, surveys: list[str], **kwargs) -> None:
    broker = AlertBroker(config, surveys, **kwargs)
    signal.signal(signal.SIGTERM, broker.stop)
    signal.signal(signal.SIGINT, broker.stop)
    broker.run()
