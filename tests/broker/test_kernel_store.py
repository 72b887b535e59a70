"""The kernel's durable writes on the running database: ingest_files, store idempotency, aux merging."""

from __future__ import annotations

import tarfile

import pytest

from broker.pipeline import ingest_files, process_messages, store_batch
from broker.stages.store import insert_new
from kowalski.surveys import get_survey
from kowalski import db
from kowalski.repositories import Alerts
from kowalski.filters.inputs import filter_input
from tests.conftest import shared_data

ZTF_2023 = ("alerts", "kowalski", "ztf_alerts", "20231012")
ZTF_2020 = ("alerts", "kowalski", "ztf_alerts", "20200202")
MODELS = ("acai_h", "acai_v", "acai_o", "acai_n", "acai_b", "bts")


def _drop(config, prefix):
    d = db.get_db(config)
    d[f"{prefix}_alerts"].delete_many({})
    d[f"{prefix}_alerts_aux"].delete_many({})


def _snapshot(coll):
    return sorted(coll.find({}, {"_id": 1, "prv_candidates": 1, "fp_hists": 1, "cross_matches": 1}),
                  key=lambda d: d["_id"])


def test_ingest_ztf_idempotent_with_scores(config):
    _drop(config, "ZTF")
    d = db.get_db(config)
    first = ingest_files(config, "ztf", shared_data(*ZTF_2023))
    assert (first["inserted"], first["aux_new"], first["failed"], first["ml_skipped"]) == (24, 24, 0, 0)
    assert d.ZTF_alerts.count_documents({}) == 24 and d.ZTF_alerts_aux.count_documents({}) == 24
    aux_before = _snapshot(d.ZTF_alerts_aux)

    again = ingest_files(config, "ztf", shared_data(*ZTF_2023))
    assert (again["inserted"], again["duplicates"], again["aux_new"], again["aux_updated"]) == (0, 24, 0, 0)
    assert d.ZTF_alerts.count_documents({}) == 24 and d.ZTF_alerts_aux.count_documents({}) == 24
    assert _snapshot(d.ZTF_alerts_aux) == aux_before

    ingest_files(config, "ztf", shared_data(*ZTF_2020))
    aux = d.ZTF_alerts_aux.find_one({"_id": "ZTF20aajcbhr"})
    assert len(aux["prv_candidates"]) == 31 and aux["cross_matches"] == {}
    alert = d.ZTF_alerts.find_one({"candid": 1127561445515015011})
    assert alert["coordinates"]["radec_str"] == ["14:00:24.8978", "64:13:10.975"]
    assert "prv_candidates" not in alert and alert["cutoutScience"]["stampData"][:2] == b"\x1f\x8b"

    for a in d.ZTF_alerts.find({}, {"classifications": 1, "candid": 1}):
        cls = a["classifications"]
        for m in MODELS:
            assert 0.0 <= cls[m] <= 1.0, (a["candid"], m)
            assert isinstance(cls[f"{m}_version"], str) and cls[f"{m}_version"]
    # candid is int64 in BSON even where it would fit 32 bits
    assert d.ZTF_alerts.count_documents({"candid": {"$type": "long"}}) == 36
    fp = d.ZTF_alerts_aux.find_one({"_id": "ZTF17aadcvhq"})
    # the archive keeps the 21 forced-photometry points (Kowalski's cutoff is off by default)
    assert len(fp["fp_hists"]) == 21 and len(fp["prv_candidates"]) == 20
    assert [p["jd"] for p in fp["fp_hists"]] == sorted(p["jd"] for p in fp["fp_hists"])


@pytest.mark.parametrize("survey,parts,n_alerts,n_aux", [
    ("pgir", ("alerts", "kowalski", "pgir_alerts", "20210629"), 17, 15),
    ("wntr", ("alerts", "kowalski", "wntr_alerts", "20240311"), 11, 11),
    ("turbo", ("alerts", "kowalski", "turbo_alerts"), 11, 11),
    ("lsst", ("alerts", "boom", "lsst"), 1, 1),
])
def test_ingest_other_surveys(config, survey, parts, n_alerts, n_aux):
    s = get_survey(survey, config)
    _drop(config, s.prefix)
    counts = ingest_files(config, survey, shared_data(*parts))
    assert (counts["inserted"], counts["aux_new"], counts["failed"]) == (n_alerts, n_aux, 0)
    d = db.get_db(config)
    assert d[s.alerts_collection].count_documents({}) == n_alerts
    assert d[s.aux_collection].count_documents({}) == n_aux
    doc = d[s.alerts_collection].find_one()
    assert doc["classifications"] == {} and doc["coordinates"]["radec_geojson"]["type"] == "Point"
    assert s.object_id in doc
    again = ingest_files(config, survey, shared_data(*parts))
    assert (again["inserted"], again["duplicates"], again["aux_updated"]) == (0, n_alerts, 0)


def test_pgir_objects_merge_history(config):
    """Two alerts of one PGIR object: the aux holds the union of their prv_candidates."""
    s = get_survey("pgir", config)
    _drop(config, s.prefix)
    files = sorted(shared_data("alerts", "kowalski", "pgir_alerts", "20210629").glob("*.avro"))
    result = process_messages("pgir", [f.read_bytes() for f in files], config)
    by_obj = {}
    for doc, h in zip(result.alerts, result.history):
        by_obj.setdefault(doc["objectId"], []).append(h)
    store_batch(config, "pgir", result)
    d = db.get_db(config)
    assert d.PGIR_alerts_aux.count_documents({}) == len(by_obj)  # one aux document per object
    merged = {oid: hs for oid, hs in by_obj.items() if len(hs) > 1}
    assert merged, "the night has no object with two alerts: the merge is not exercised"
    for oid, hs in by_obj.items():
        keys = {s.prv_key(p) for h in hs for p in h["prv_candidates"]}
        aux = d.PGIR_alerts_aux.find_one({"_id": oid})
        assert [s.prv_key(p) for p in aux["prv_candidates"]] == sorted(keys, key=lambda k: (  # union, once each
            next(p["jd"] for h in hs for p in h["prv_candidates"] if s.prv_key(p) == k), k))
        jds = [p["jd"] for p in aux["prv_candidates"]]
        assert jds == sorted(jds)
    # the two alerts of an object repeat points (the later packet carries the earlier history): the aux
    # holds each once, so the merge deduplicated rather than appended
    assert any(sum(len(h["prv_candidates"]) for h in hs) > len({s.prv_key(p) for h in hs for p in h["prv_candidates"]})
               for hs in merged.values())


def test_ingest_tarball_and_crossmatch_once_per_new_object(config, tmp_path):
    _drop(config, "ZTF")
    files = sorted(shared_data(*ZTF_2020).glob("*.avro"))
    tgz = tmp_path / "night.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=f"night/{f.name}")
    calls = []

    def crossmatch(alerts):
        calls.append([a["objectId"] for a in alerts])
        return [{"FAKE_CAT": [{"ra": a["candidate"]["ra"]}]} for a in alerts]

    counts = ingest_files(config, "ztf", tgz, crossmatch=crossmatch, batch_size=5)
    assert counts["messages"] == 12 and counts["inserted"] == 12 and counts["aux_new"] == 11
    seen = [oid for call in calls for oid in call]
    assert len(seen) == len(set(seen)) == 11
    d = db.get_db(config)
    aux = d.ZTF_alerts_aux.find_one({"_id": "ZTF20aajcbhr"})
    assert aux["cross_matches"]["FAKE_CAT"][0]["ra"] == pytest.approx(210.1037407)
    calls.clear()
    ingest_files(config, "ztf", tgz, crossmatch=crossmatch)
    assert calls == []  # known objects are never cross-matched again


def test_store_completes_after_a_crash_between_writes(config):
    """Alerts written but aux not (a crash in between): retrying the batch writes the aux."""
    _drop(config, "ZTF")
    s = get_survey("ztf", config)
    files = sorted(shared_data(*ZTF_2023).glob("*.avro"))[:4]
    result = process_messages("ztf", [f.read_bytes() for f in files], config)
    d = db.get_db(config)
    fresh = insert_new(Alerts(d, config, s).add, result.alerts)
    assert fresh == [True] * 4
    counts = store_batch(config, "ztf", result)
    assert (counts["inserted"], counts["duplicates"], counts["aux_new"]) == (0, 4, 4)
    for doc, h in zip(result.alerts, result.history):
        aux = d[s.aux_collection].find_one({"_id": doc["objectId"]})
        assert len(aux["prv_candidates"]) == len(h["prv_candidates"])


def test_store_merges_into_an_object_created_by_another_writer(config):
    """An object's aux document created by someone else between our read and our insert (the
    duplicate _id of the new-objects insert) is merged into, not overwritten: both histories kept."""
    _drop(config, "ZTF")
    s = get_survey("ztf", config)
    files = sorted(shared_data(*ZTF_2023).glob("*.avro"))[:3]
    result = process_messages("ztf", [f.read_bytes() for f in files], config)
    d = db.get_db(config)
    oid = result.alerts[0]["objectId"]
    theirs = {"jd": 2400000.5, "fid": 1, "magpsf": 19.0, "candid": 1}

    def crossmatch_while_another_writer_inserts(alerts):  # runs after the read, before the insert
        d[s.aux_collection].insert_one({"_id": oid, "cross_matches": {"theirs": []}, "prv_candidates": [theirs],
                                        "fp_hists": []})
        return [{} for _ in alerts]

    counts = store_batch(config, "ztf", result, crossmatch=crossmatch_while_another_writer_inserts)
    assert (counts["inserted"], counts["aux_new"], counts["aux_updated"]) == (3, 2, 1)
    aux = d[s.aux_collection].find_one({"_id": oid})
    jds = [p["jd"] for p in aux["prv_candidates"]]
    assert jds[0] == 2400000.5 and jds == sorted(jds)
    assert len(jds) == 1 + len(result.history[0]["prv_candidates"])
    assert aux["cross_matches"] == {"theirs": []}
    assert d[s.aux_collection].count_documents({}) == 3
    assert result.aux == _stored_aux(config, result)  # the raced object: theirs merged with ours


def _stored_aux(config, result) -> dict:
    s = get_survey("ztf", config)
    ids = list({a["objectId"] for a in result.alerts})
    return {x["_id"]: x for x in db.get_db(config)[s.aux_collection].find({"_id": {"$in": ids}})}


def test_store_hands_the_filter_step_the_aux_documents_it_stored(config):
    """The filter step takes the aux documents from the store instead of reading them again: they
    must be what the database holds, for new objects, updated ones and a re-delivered batch, so
    that every filter sees the same input either way."""
    _drop(config, "ZTF")
    files = sorted(shared_data(*ZTF_2023).glob("*.avro")) + sorted(shared_data(*ZTF_2020).glob("*.avro"))
    batches = [files[:10], files[5:30], files[5:30], files]  # new, new + existing, duplicates, all
    for batch in batches:
        result = process_messages("ztf", [f.read_bytes() for f in batch], config)
        store_batch(config, "ztf", result)
        stored = _stored_aux(config, result)
        assert result.aux.keys() == stored.keys()
        for oid, aux in stored.items():
            assert {k: aux[k] for k in aux if k in result.aux[oid]} == result.aux[oid], oid
        for alert in result.alerts:
            for perms in ((1,), (1, 2, 3)):
                assert filter_input(alert, result.aux[alert["objectId"]], perms, "ztf", exact=True) == \
                    filter_input(alert, stored[alert["objectId"]], perms, "ztf", exact=True)
    assert any(len(a.get("fp_hists") or []) for a in stored.values())


def test_database_down_propagates(config):
    from pymongo.errors import PyMongoError

    from kowalski.config import load_config

    files = sorted(shared_data(*ZTF_2023).glob("*.avro"))[:1]
    result = process_messages("ztf", [f.read_bytes() for f in files], config)
    down = load_config(environ={"KOWALSKI_DATABASE__URI": "mongodb://127.0.0.1:9/",
                                "KOWALSKI_DATABASE__SERVER_SELECTION_TIMEOUT_MS": "300",
                                "KOWALSKI_DATABASE__NAME": config["database"]["name"]},
                       generate_secrets=False)
    with pytest.raises(PyMongoError):  # ServerSelectionTimeoutError: the consumer pauses and retries
        store_batch(down, "ztf", result)


def test_crossmatch_from_the_workers_kernel_equals_database_cones(config):
    """Without an explicit callable, the cross-matches computed in process_messages (on the Dask
    workers in the broker) are what the aux documents of new objects get: equal to the
    database's own cone search of the configured radius."""
    import math

    from broker.catalogs import alert_positions, synth_catalog

    _drop(config, "ZTF")
    synth_catalog(config, "xm_kernel", 5_000, centres=alert_positions(config), density_per_deg2=2e5, seed=9,
                  progress=False)
    radius = 20.0
    cfg = type(config)({**config, "crossmatch": {"ztf": {"xm_kernel": {"radius_arcsec": radius, "max_results": 1000}}}})
    counts = ingest_files(cfg, "ztf", shared_data(*ZTF_2023))
    assert counts["aux_new"] == 24
    d = db.get_db(config)
    total = 0
    for alert in d.ZTF_alerts.find({}, {"objectId": 1, "candidate.ra": 1, "candidate.dec": 1}):
        ra, dec = alert["candidate"]["ra"], alert["candidate"]["dec"]
        q = {"coordinates.radec_geojson": {"$geoWithin": {"$centerSphere": [[ra - 180, dec],
                                                                           math.radians(radius / 3600)]}}}
        expected = {x["_id"] for x in d.xm_kernel.find(q, {"_id": 1})}
        matches = d.ZTF_alerts_aux.find_one({"_id": alert["objectId"]})["cross_matches"]["xm_kernel"]
        assert {m["_id"] for m in matches} == expected
        total += len(matches)
    assert total > 24  # not vacuous
