"""Broker counters and per-stage timings: Prometheus metrics plus a JSON snapshot (`broker stats`)."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE

from kowalski.bench import percentile

REGISTRY = CollectorRegistry()
ALERTS = Counter("kowalski_broker_alerts", "Alerts by outcome", ["survey", "outcome"], registry=REGISTRY)
STAGE_SECONDS = Counter("kowalski_broker_stage_seconds", "Time spent per stage (sum over alerts' batches)",
                        ["survey", "stage"], registry=REGISTRY)
LATENCY = Histogram("kowalski_broker_alert_latency_seconds", "Kafka timestamp to durably stored", ["survey"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=REGISTRY)
INFLIGHT = Gauge("kowalski_broker_inflight_batches", "Batches on the Dask cluster", registry=REGISTRY)
DEAD_LETTERS = Counter("kowalski_broker_dead_letters", "Messages sent to a dead-letter topic", registry=REGISTRY)


def prometheus_text() -> bytes:
    return generate_latest(REGISTRY)


class BrokerStats:
    """Running totals for `kowalski broker stats` (and the same figures to Prometheus)."""

    def __init__(self, surveys: list[str]):
        self.lock = threading.Lock()
        self.started = time.time()
        self.state = "starting"
        self.db_outages = 0
        self._dead = 0
        self.per_survey = {s: {"messages": 0, "stored": 0, "duplicates": 0, "failed": 0, "aux_new": 0,
                               "aux_updated": 0, "stage_seconds": {}} for s in surveys}
        self.latencies: list[float] = []  # last 10,000

    @property
    def dead_letters(self) -> int:
        return self._dead

    @dead_letters.setter
    def dead_letters(self, value: int) -> None:
        DEAD_LETTERS.inc(value - self._dead)
        self._dead = value

    def record_batch(self, survey: str, n: int, counts: dict, timings: dict, t_store: float,
                     latencies: list[float]) -> None:
        with self.lock:
            s = self.per_survey[survey]
            s["messages"] += n
            counts = {**counts, "stored": counts.get("stored", counts.get("inserted", 0))}
            for k in ("stored", "duplicates", "failed", "aux_new", "aux_updated"):
                s[k] += int(counts.get(k, 0))
            for stage, secs in {**(timings or {}), "store": t_store}.items():
                s["stage_seconds"][stage] = s["stage_seconds"].get(stage, 0.0) + float(secs)
                STAGE_SECONDS.labels(survey, stage).inc(float(secs))
            for k in ("stored", "duplicates", "failed"):
                ALERTS.labels(survey, k).inc(int(counts.get(k, 0)))
            for lat in latencies:
                LATENCY.labels(survey).observe(lat)
            self.latencies = (self.latencies + latencies)[-10000:]

    def messages(self, survey: str) -> int:
        """Messages completed for a survey (cheap: no percentiles, for polling)."""
        with self.lock:
            return self.per_survey[survey]["messages"]

    def snapshot(self, last: int | None = None) -> dict:
        """Counters and latency percentiles (over the last ``last`` alerts, default all kept)."""
        with self.lock:
            per = {}
            for name, s in self.per_survey.items():
                n = max(1, s["messages"])
                per[name] = {**{k: v for k, v in s.items() if k != "stage_seconds"},
                             "ms_per_alert": {k: round(v * 1000 / n, 3) for k, v in s["stage_seconds"].items()}}
            lat = self.latencies[-last:] if last else self.latencies
            return {"state": self.state, "uptime_s": round(time.time() - self.started, 1),
                    "db_outages": self.db_outages, "dead_letters": self._dead, "surveys": per,
                    "latency_s": {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "n": len(lat)}}
