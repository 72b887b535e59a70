"""Kafka for the broker: the consumer group's subscription to the survey topics, the dead-letter
topics and the offset commits.

librdkafka's consumer calls (consume, pause/resume, commit) are made on the thread that polls
(a synchronous commit from another thread waits for the consumer's own polling and stalls, seen
with librdkafka); dead letters may be produced from any thread.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from kowalski.config import Config

log = logging.getLogger("kowalski.broker")


def librdkafka_regex(pattern: str) -> str:
    """librdkafka's own regex engine lacks the shorthand classes Python has: spell them out
    (otherwise the subscription silently matches nothing)."""
    return pattern.replace(r"\d", "[0-9]").replace(r"\w", "[A-Za-z0-9_]").replace(r"\s", "[ \t]")


def topic_pattern(config: Config, survey: str) -> str:
    from kowalski.surveys import get_survey

    pattern = get_survey(survey, config).topic_pattern
    return pattern if pattern.startswith("^") else "^" + pattern


class KafkaSource:
    def __init__(self, config: Config, surveys: list[str], group_id: str, stats):
        self.config = config
        self.patterns = {s: re.compile(topic_pattern(config, s)) for s in surveys}
        self.group_id = group_id
        self.dlq_suffix = config["broker"]["dlq_suffix"]
        self.stats = stats
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.paused = False  # what has been applied to the consumer's assignment

    def start(self, on_revoke) -> None:
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
        self.consumer.subscribe([librdkafka_regex(p.pattern) for p in self.patterns.values()], on_revoke=on_revoke)
        log.info("subscribed group=%s patterns=%s", self.group_id, [p.pattern for p in self.patterns.values()])

    def survey_of(self, topic: str) -> str | None:
        for s, p in self.patterns.items():
            if p.match(topic):
                return s
        return None

    def consume(self, n: int, timeout: float) -> list:
        return self.consumer.consume(num_messages=n, timeout=timeout)

    def follow_pause(self, paused: bool) -> None:
        """Make the consumer's paused state follow the writer's (polling goes on: the group
        membership stays alive)."""
        if paused != self.paused:
            parts = self.consumer.assignment()
            (self.consumer.pause if paused else self.consumer.resume)(parts)
            self.paused = paused

    def dead_letter(self, msg, reason: str, survey: str) -> None:
        topic = msg.topic() + self.dlq_suffix
        headers = {"reason": reason, "source_topic": msg.topic(), "source_partition": str(msg.partition()),
                   "source_offset": str(msg.offset()), "survey": survey}
        log.warning("dead letter %s[%d]@%d -> %s: %s", msg.topic(), msg.partition(), msg.offset(), topic, reason)
        self.producer.produce(topic, msg.value() or b"", key=msg.key(), headers=list(headers.items()))
        self.stats.dead_letters += 1

    def flush_dead_letters(self, stop: threading.Event) -> None:
        """A bad message's offset is committed only once Kafka has its dead letter: while Kafka is
        away, keep flushing (the main thread's backpressure holds new batches meanwhile)."""
        while (left := self.producer.flush(10)) and not stop.is_set():
            log.warning("kafka: %d dead letters not yet acknowledged; retrying before the commit", left)

    def commit(self, last: dict[tuple[str, int], int]) -> bool:
        """Commit the last stored offset of each partition; False when Kafka is away (retry later)."""
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        if not offsets:
            return True
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            return True
        except KafkaException as exc:
            log.warning("kafka: commit failed (%s); retrying", exc)
            time.sleep(0.5)
            return False
