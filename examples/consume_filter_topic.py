"""Read a Kowalski filter output topic with a plain Kafka consumer.

    python examples/consume_filter_topic.py kowalski_filter_1 [--bootstrap 127.0.0.1:9092] [--group me]
        [--from-beginning] [--max N] [--save-cutouts DIR]

Each message is an Avro container (schema: broker/delivery/filter_output.avsc, embedded in the message)
holding one record; its key is "<candid>:<filter_id>". Records may be delivered again after a
broker crash: de-duplicate on the key, as below. Needs only confluent-kafka and fastavro.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

import fastavro
from confluent_kafka import Consumer


def read_message(value: bytes) -> list[dict]:
    return list(fastavro.reader(io.BytesIO(value)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("topic")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--group", default="kowalski-filter-reader")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=0, help="stop after N records (0: run until Ctrl-C)")
    p.add_argument("--idle-exit", type=float, default=0, help="stop after this many seconds without a message")
    p.add_argument("--save-cutouts", type=Path, help="write the FITS cutouts to this folder")
    args = p.parse_args(argv)

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": True,
                  "auto.offset.reset": "earliest" if args.from_beginning else "latest"})
    c.subscribe([args.topic])
    seen: set[str] = set()
    n = idle = 0
    try:
        while not args.max or n < args.max:
            msg = c.poll(1.0)
            if msg is None:
                idle += 1
                if args.idle_exit and idle >= args.idle_exit:
                    break
                continue
            idle = 0
            if msg.error():
                print(f"error: {msg.error()}", file=sys.stderr)
                continue
            key = (msg.key() or b"").decode()
            if key in seen:
                continue  # a re-delivery
            seen.add(key)
            for rec in read_message(msg.value()):
                n += 1
                print(json.dumps({"key": key, "objectId": rec["objectId"], "candid": rec["candid"],
                                  "filter_id": rec["filter_id"], "fid": rec["fid"], "ra": rec["ra"], "dec": rec["dec"],
                                  "magpsf": rec["candidate"].get("magpsf"),
                                  "annotations": json.loads(rec["annotations"]),
                                  "n_prv_candidates": len(rec["prv_candidates"]), "n_fp_hists": len(rec["fp_hists"])}))
                if args.save_cutouts:
                    args.save_cutouts.mkdir(parents=True, exist_ok=True)
                    for kind in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
                        cut = rec.get(kind)
                        if cut:
                            (args.save_cutouts / f"{rec['candid']}_{kind}.fits").write_bytes(
                                gzip.decompress(cut["stampData"]))
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    print(f"{n} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
