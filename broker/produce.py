"""`kowalski produce`: publish alert files to Kafka, one Avro container file per message.

Accepts files, folders and nightly `.tar.gz` archives (as ZTF distributes its public alerts).
`--replicate K` replays each real alert K more times with fresh `candid`/object id for load
tests; copies are marked in the packet (`publisher` says "synthetic copy", object ids start
with "SYN") so they can never be mistaken for survey data.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Iterator

import fastavro
from confluent_kafka import Producer
from tqdm import tqdm

log = logging.getLogger("kowalski.produce")

SYNTH_CANDID_BASE = 9_000_000_000_000_000_000  # above any real ZTF candid, below int64 max
OBJECT_ID_FIELDS = ("objectId", "objectid")


class ProduceError(Exception):
    pass


def read_alert_files(paths: list[str | Path]) -> list[tuple[str, bytes]]:
    """(name, bytes) of every alert file (the broker's own reader), with CLI-friendly errors."""
    from broker.pipeline import iter_alert_files

    try:
        items = list(iter_alert_files(paths))
    except FileNotFoundError as exc:
        raise ProduceError(str(exc)) from None
    if not items:
        raise ProduceError(f"no .avro files in {', '.join(map(str, paths))}")
    return items


def synthetic_copy(data: bytes, k: int) -> bytes:
    """Copy k (>=1) of an alert container file with fresh ids, marked synthetic."""
    try:
        reader = fastavro.reader(io.BytesIO(data))
        schema = reader.writer_schema
        records = list(reader)
    except Exception as exc:
        raise ProduceError(f"--replicate needs Avro container files ({exc.__class__.__name__}: {exc})") from exc
    out = []
    for rec in records:
        rec = dict(rec)
        candid = int(rec["candid"])
        if not 0 < k < 10**6:
            raise ProduceError("--replicate supports up to 999,999 copies")
        # unique per (alert, copy) for the sample alerts, whose candids differ in the last 11 digits
        rec["candid"] = SYNTH_CANDID_BASE + (candid % 10**11) * 10**6 + k
        for f in OBJECT_ID_FIELDS:
            if f in rec and rec[f] is not None:
                rec[f] = f"SYN{k:05d}{rec[f]}"
        if "publisher" in rec:
            rec["publisher"] = f"kowalski synthetic copy {k} of candid {candid}"
        cand = rec.get("candidate")
        if isinstance(cand, dict) and "candid" in cand:
            rec["candidate"] = {**cand, "candid": rec["candid"]}
        out.append(rec)
    buf = io.BytesIO()
    fastavro.writer(buf, schema, out, codec=reader.codec)
    return buf.getvalue()


def produce(bootstrap_servers: str, topic: str, paths: list, rate: float | None = None,
            replicate: int = 0, progress: bool = True) -> dict:
    """Publish the files (and `replicate` synthetic copies of each); returns
    {"messages", "bytes", "seconds", "rate"}."""
    items = read_alert_files(paths)
    copies = ((name, data if k == 0 else synthetic_copy(data, k))
              for k in range(1 + max(0, replicate)) for name, data in items)
    return publish(bootstrap_servers, topic, copies, len(items) * (1 + max(0, replicate)), rate, progress)


def publish(bootstrap_servers: str, topic: str, messages, total: int | None = None,
            rate: float | None = None, progress: bool = False) -> dict:
    """Send (key, value) pairs to a topic, throttled to `rate`/s, and wait for delivery."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5,
                         "message.max.bytes": 16 * 1024 * 1024, "enable.idempotence": True})
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))

    sent = nbytes = 0
    t0 = time.monotonic()
    bar = tqdm(total=total, unit="alerts", desc=f"-> {topic}", disable=not progress)
    for name, payload in messages:
        while True:
            try:
                producer.produce(topic, payload, key=name.encode() if name else None, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let it drain
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
        nbytes += len(payload)
        bar.update(1)
        if rate:
            ahead = sent / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    remaining = producer.flush(60)
    bar.close()
    if remaining or errors:
        raise ProduceError(f"{remaining + len(errors)} of {sent} messages not delivered to {topic}: "
                           f"{errors[0] if errors else 'flush timed out'}")
    secs = time.monotonic() - t0
    return {"topic": topic, "messages": sent, "bytes": nbytes, "seconds": round(secs, 2),
            "rate": round(sent / secs, 1) if secs else None}


# Real nights in ../shared/data replayed on `kowalski up` (`kowalski broker replay`): (survey, folder, topic).
SHARED_NIGHTS = [
    ("ztf", "alerts/kowalski/ztf_alerts/20200202", "ztf_20200202_programid1"),
    ("ztf", "alerts/kowalski/ztf_alerts/20231012", "ztf_20231012_programid1"),
    ("pgir", "alerts/kowalski/pgir_alerts/20210629", "pgir_20210629"),
    ("wntr", "alerts/kowalski/wntr_alerts/20240311", "winter_20240311"),
]


def replay_shared_nights(config) -> Iterator[str]:
    """Produce each shared night of the broker's surveys once: only into a topic that does not
    exist yet, so a second `kowalski up` replays nothing. Yields what was done, one line each."""
    from confluent_kafka.admin import AdminClient

    data = config.path("paths.data")
    if not data.is_dir():
        yield f"no shared data at {data} (paths.data): nothing replayed"
        return
    servers = config["kafka"]["bootstrap_servers"]
    topics = AdminClient({"bootstrap.servers": servers}).list_topics(timeout=10).topics
    for survey, folder, topic in SHARED_NIGHTS:
        if survey not in config["broker"]["surveys"] or topic in topics or not (data / folder).is_dir():
            continue
        res = produce(servers, topic, [data / folder], progress=False)
        yield f"replayed {res['messages']} real {survey.upper()} alerts of {folder} -> {topic}"
