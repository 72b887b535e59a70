"""Kafka output: one topic per filter (``delivery.kafka.topic``, default
``kowalski_filter_{filter_id}``), one Avro container per message (schema ``broker/delivery/filter_output.avsc``
embedded, as ZTF alerts are), key ``<candid>:<filter_id>``."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from pathlib import Path

import fastavro
from bson import json_util
from confluent_kafka import Producer

log = logging.getLogger("kowalski.delivery.kafka")

SCHEMA_PATH = Path(__file__).resolve().with_name("filter_output.avsc")
SCHEMA_VERSION = "1.0"
_PRIMITIVE = (type(None), bool, int, float, str)


def load_schema():
    return fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))


def _flat(d) -> dict:
    """A map of primitives (anything else as its JSON text)."""
    if not isinstance(d, dict):
        return {}
    out = {}
    for k, v in d.items():
        if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
            v = str(v)
        out[str(k)] = v if isinstance(v, _PRIMITIVE) else json_util.dumps(v)
    return out


def _cutout(c):
    if isinstance(c, dict) and isinstance(c.get("stampData"), (bytes, bytearray)):
        return {"fileName": str(c.get("fileName") or ""), "stampData": bytes(c["stampData"])}
    return None


def record(item, survey: str) -> dict:
    d, alert, view = item.doc, item.alert or {}, item.view or {}
    cand = alert.get("candidate") or {}
    data = d.get("data") or {}
    ann = data.get("annotations") if isinstance(data, dict) else None
    passed = d.get("created_at") or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return {
        "schemavsn": SCHEMA_VERSION, "survey": survey, "filter_id": int(d["filter_id"]),
        "group_id": int(d.get("group_id") or 0), "fid": str(d.get("fid") or ""), "candid": int(d["candid"]),
        "objectId": str(d.get("objectId") or ""), "passed_at": passed.replace(tzinfo=dt.timezone.utc),
        "ra": cand.get("ra"), "dec": cand.get("dec"),
        "annotations": json_util.dumps(ann if isinstance(ann, dict) else {}),
        "filter_output": json_util.dumps(data),
        "candidate": _flat(cand), "classifications": _flat(alert.get("classifications")),
        "prv_candidates": [_flat(p) for p in view.get("prv_candidates") or []],
        "fp_hists": [_flat(p) for p in view.get("fp_hists") or []],
        "cutoutScience": _cutout(alert.get("cutoutScience")),
        "cutoutTemplate": _cutout(alert.get("cutoutTemplate")),
        "cutoutDifference": _cutout(alert.get("cutoutDifference")),
    }


def encode(rec: dict, schema) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [rec], codec="null")
    return buf.getvalue()


class KafkaTarget:
    name = "kafka"

    def __init__(self, config):
        kc = (config.get("delivery") or {}).get("kafka") or {}
        self.servers = kc.get("bootstrap_servers") or config["kafka"]["bootstrap_servers"]
        self.template = kc.get("topic", "kowalski_filter_{filter_id}")
        self.timeout_s = float(kc.get("timeout_s", 30))
        self.schema = load_schema()
        self.producer = Producer({"bootstrap.servers": self.servers, "enable.idempotence": True,
                                  "linger.ms": 5, "message.timeout.ms": int(self.timeout_s * 1000),
                                  "message.max.bytes": 10_000_000})

    def topic(self, doc: dict) -> str:
        return self.template.format(filter_id=doc["filter_id"], group_id=doc.get("group_id"),
                                    survey=doc.get("survey", ""))

    def send(self, items) -> dict:
        results: dict = {}

        def done(key):
            def cb(err, msg):
                results[key] = None if err is None else f"kafka: {err}"
            return cb

        for it in items:
            key = it.doc["_id"]
            if it.alert is None:
                results[key] = "the alert is not in the archive"
                continue
            try:
                value = encode(record(it, it.doc.get("survey", "ztf")), self.schema)
                self.producer.produce(self.topic(it.doc), value=value, key=key.encode(), on_delivery=done(key))
            except (BufferError, ValueError, TypeError, KeyError) as exc:
                results[key] = f"kafka: {type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - KafkaException and schema errors
                results[key] = f"kafka: {exc}"
            self.producer.poll(0)
        # flush() without a limit returns once every message is acknowledged or has failed after
        # message.timeout.ms: nothing is left in the queue to be sent later behind our back
        self.producer.flush()
        return results

    def close(self) -> None:
        self.producer.flush(self.timeout_s)
