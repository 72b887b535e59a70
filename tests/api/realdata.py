"""The real ZTF sample alerts, ingested through the broker's store path, plus synthetic
programid-2 copies (new candid, same object, later epoch; their history points marked
programid 2) for data-rights tests: the real alerts are all public (programid 1)."""

from __future__ import annotations

import io

import fastavro

from tests.conftest import shared_data

RA, DEC = 71.6577756, -10.2263957  # ZTF19abzrhgq
PRIVATE_OF = (1127107111615015007, 1127561445515015011, 2475433850015010009)  # real alerts copied as programid 2
PRIVATE_CANDID_OFFSET = 7 * 10**17  # keeps the copies' candids unique and recognisable


def private_copy(data: bytes) -> bytes:
    reader = fastavro.reader(io.BytesIO(data))
    schema, records = reader.writer_schema, list(reader)
    out = []
    for rec in records:
        rec = dict(rec)
        candid = int(rec["candid"]) % 10**17 + PRIVATE_CANDID_OFFSET
        rec["candid"] = candid
        rec["publisher"] = f"kowalski synthetic programid-2 copy of candid {rec['candid']}"
        rec["candidate"] = {**rec["candidate"], "candid": candid, "programid": 2,
                            "jd": rec["candidate"]["jd"] + 0.001}
        rec["prv_candidates"] = [{**p, "programid": 2, "jd": p["jd"] + 0.0005,
                                  "candid": (p["candid"] % 10**17 + PRIVATE_CANDID_OFFSET) if p.get("candid") else None}
                                 for p in (rec.get("prv_candidates") or [])]
        if rec.get("fp_hists"):
            rec["fp_hists"] = [{**p, "programid": 2, "jd": p["jd"] + 0.0005} for p in rec["fp_hists"]]
        out.append(rec)
    buf = io.BytesIO()
    fastavro.writer(buf, schema, out, codec=reader.codec)
    return buf.getvalue()


def load(config) -> dict:
    from broker.pipeline import ingest_files, process_messages, store_batch
    days = [shared_data("alerts/kowalski/ztf_alerts/20200202"), shared_data("alerts/kowalski/ztf_alerts/20231012")]
    totals = ingest_files(config, "ztf", days)
    files = {int(p.stem): p for d in days for p in d.glob("*.avro")}
    copies = [private_copy(files[c].read_bytes()) for c in PRIVATE_OF]
    result = process_messages("ztf", copies, config)
    assert not result.failed, result.failed
    counts = store_batch(config, "ztf", result)
    private = [c % 10**17 + PRIVATE_CANDID_OFFSET for c in PRIVATE_OF]
    return {"totals": totals, "private_candids": private, "private_counts": counts, "n_public": totals["inserted"]}
