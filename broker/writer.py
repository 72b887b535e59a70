"""The broker's writer: stores finished batches in the order they were consumed, runs the filter
step on them, dead-letters their bad messages and hands their offsets back for the commit.

It runs in its own thread so that storing overlaps with the next batches being consumed and
computed (a main thread that also stored left the workers idle ~20% of the time). One retry policy
for every database step: while the database is away the step is retried with backoff and the
writer asks the main thread to pause consumption (``paused``); nothing is acknowledged that is
not stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from kowalski import db

log = logging.getLogger("kowalski.broker")


@dataclass
class Batch:
    survey: str
    messages: list  # confluent_kafka.Message
    future: object
    rejected: list = field(default_factory=list)  # dead-lettered before processing (too large)
    submitted: float = field(default_factory=time.monotonic)


class BatchWriter:
    def __init__(self, config, surveys: list[str], source, stats, write: bool = True):
        self.config = config
        self.source = source
        self.stats = stats
        self.write = write
        self.inflight: deque[Batch] = deque()  # submitted, not yet stored; the writer pops them
        self.cond = threading.Condition()  # guards inflight and to_commit
        self.to_commit: dict[tuple[str, int], int] = {}  # stored, not yet committed (main thread commits)
        self.paused = False  # set while the database is away
        self.error: BaseException | None = None
        self.stop = threading.Event()
        from broker.filters.runner import FilterRunner  # active user filters -> durable outbox
        self.filter_runners = {s: FilterRunner(config, s) for s in surveys} if write else {}

    # --- the main thread's side -------------------------------------------------------------
    def add(self, batch: Batch) -> None:
        with self.cond:
            self.inflight.append(batch)
            self.cond.notify_all()

    def take_offsets(self) -> dict[tuple[str, int], int]:
        with self.cond:
            last, self.to_commit = self.to_commit, {}
        return last

    def give_back(self, offsets: dict[tuple[str, int], int]) -> None:
        """Offsets whose commit failed: kept for the next try (at-least-once)."""
        with self.cond:
            for key, o in offsets.items():
                self.to_commit[key] = max(self.to_commit.get(key, -1), o)

    def wait_until_stored(self) -> None:
        with self.cond:
            while self.inflight and self.error is None:
                self.cond.wait(0.2)

    def finish(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()

    # --- the writer thread ------------------------------------------------------------------
    def run(self) -> None:
        """Store finished batches in consumption order; their offsets go to the main thread."""
        try:
            while True:
                with self.cond:
                    while not self.inflight and not self.stop.is_set():
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
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    def _complete(self, batch: Batch) -> None:
        from broker.pipeline import process_messages

        if batch.future is None:  # only messages dead-lettered at submit (too large)
            self.source.flush_dead_letters(self.stop)
            self._stored(batch.rejected)
            return
        try:
            result = batch.future.result()
        except Exception as exc:  # a worker died twice on this batch: do it here, not lose it
            log.error("batch of %d %s alerts failed on dask (%s); processing it locally", len(batch.messages),
                      batch.survey, exc)
            values = [m.value() or b"" for m in batch.messages]
            result = self.with_db_retry(lambda: process_messages(batch.survey, values, self.config))
        t0 = time.monotonic()
        counts = {**self._store(batch.survey, result), "failed": len(result.failed)}
        if self.filter_runners:  # passing alerts reach the outbox before the offsets are committed
            self.with_db_retry(lambda: self.filter_runners[batch.survey].process(result.alerts, result.aux))
        t_store = time.monotonic() - t0
        for idx, reason in result.failed:
            self.source.dead_letter(batch.messages[idx], reason, batch.survey)
        if result.failed or batch.rejected:
            self.source.flush_dead_letters(self.stop)
        self._stored(batch.messages + batch.rejected)
        now_ms = time.time() * 1000
        failed = {i for i, _ in result.failed}
        latencies = [(now_ms - m.timestamp()[1]) / 1000 for i, m in enumerate(batch.messages)
                     if i not in failed and m.timestamp()[1] > 0]
        self.stats.record_batch(batch.survey, len(batch.messages), counts, result.timings, t_store, latencies)

    def _store(self, survey: str, result) -> dict:
        from broker.pipeline import store_batch

        if not self.write:
            return {"inserted": len(result.alerts)}
        return self.with_db_retry(lambda: store_batch(self.config, survey, result))

    def with_db_retry(self, step):
        """Run an idempotent database step until it succeeds; while the database is away the
        assigned partitions are paused (nothing is acknowledged that is not stored)."""
        delay = 0.5
        while True:
            try:
                out = step()
                if self.paused:
                    self._resume()
                return out
            except db.DatabaseUnavailable as exc:
                if not self.paused:
                    log.error("database unavailable (%s): pausing consumption until it returns",
                              str(exc).split(",")[0][:160])
                    self._pause()
                    self.stats.db_outages += 1
                time.sleep(delay)  # the main thread's polls keep the group membership alive
                delay = min(delay * 2, 5.0)

    def _pause(self):
        """The main thread applies it (librdkafka calls from this thread would wait for the main
        thread's poll to return, like the commit)."""
        self.paused = True
        self.stats.state = "paused: database unavailable"

    def _resume(self):
        self.paused = False
        self.stats.state = "running"
        log.info("database is back: consumption resumed")

    def _stored(self, msgs: list) -> None:
        """Hand a stored batch's offsets to the main thread, which commits them."""
        with self.cond:
            for m in msgs:
                key = (m.topic(), m.partition())
                self.to_commit[key] = max(self.to_commit.get(key, -1), m.offset())
            self.cond.notify_all()
