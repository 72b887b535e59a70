"""The per-alert kernel on real alerts, without the database: decode, mongify, history, ML.

Expected values are the reference facts only (Kowalski's own component tests, the models'
reference outputs); everything else is checked against independent computations.
"""

from __future__ import annotations

import gzip
import io
import struct
import warnings

import fastavro
import numpy as np
import pytest

from kowalski.errors import AlertError
from broker.pipeline import BatchResult, process_messages
from broker.stages import history
from broker.stages.decode import decode
from kowalski.surveys.avro import read_container
from broker.stages.ml import Classifier, prepare_triplets, read_fits_image, run_model
from broker.stages.mongify import mongify
from kowalski.surveys import SURVEYS, get_survey
from kowalski.config import load_config
from tests.conftest import shared_data

ZTF_2020 = ("alerts", "kowalski", "ztf_alerts", "20200202")
ZTF_2023 = ("alerts", "kowalski", "ztf_alerts", "20231012")
REF_CANDID = 1127561445515015011
FP_CANDID = 2475433850015010009
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


@pytest.fixture(scope="module")
def cfg():
    return load_config(generate_secrets=False)


@pytest.fixture(scope="module")
def ztf(cfg):
    return get_survey("ztf", cfg)


def _bytes(*parts) -> bytes:
    return shared_data(*parts).read_bytes()


def _mongified(ztf, *parts):
    docs, hist = mongify(decode(_bytes(*parts), ztf), ztf)
    return docs[0], hist[0]


def _without_candidate_field(data: bytes, field: str) -> bytes:
    """A real ZTF packet re-encoded with ``candidate.<field>`` removed from schema and record."""
    reader = fastavro.reader(io.BytesIO(data))
    schema = reader.writer_schema
    records = list(reader)
    cand_schema = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    cand_schema["fields"] = [f for f in cand_schema["fields"] if f["name"] != field]
    for r in records:
        del r["candidate"][field]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return out.getvalue()


# --- surveys ------------------------------------------------------------------------------------

def test_survey_registry(cfg):
    assert set(SURVEYS) == {"ztf", "pgir", "wntr", "turbo", "lsst"}
    patterns = {name: get_survey(name, cfg).topic_pattern for name in SURVEYS}
    assert patterns == {"ztf": r"^ztf_\d{8}_programid\d+$", "pgir": r"^pgir_\d{8}$", "wntr": r"^winter_\d{8}$",
                        "turbo": r"^turbo_\d{8}$", "lsst": r"^lsst.*"}
    assert get_survey("winter", cfg).object_id == "objectid"
    assert get_survey("WNTR", cfg).cutout_fields[0] == "cutout_science"
    assert get_survey("turbo", cfg).alerts_collection == "TURBO_alerts"
    assert get_survey("ztf", cfg).aux_collection == "ZTF_alerts_aux"
    assert get_survey("ztf", cfg).ml_models() and not get_survey("pgir", cfg).ml_models()
    with pytest.raises(KeyError, match="unknown survey"):
        get_survey("nosuch", cfg)


# --- mongify --------------------------------------------------------------------------------------

def test_mongify_reference_coordinates(ztf):
    doc, hist = _mongified(ztf, *ZTF_2020, f"{REF_CANDID}.avro")
    assert doc["candid"] == REF_CANDID and type(doc["candid"]).__name__ == "Int64"
    c = doc["coordinates"]
    assert c["radec_str"] == ["14:00:24.8978", "64:13:10.975"]
    assert c["radec_geojson"]["type"] == "Point"
    assert c["radec_geojson"]["coordinates"] == pytest.approx([30.1037407, 64.2197152], abs=1e-9)
    assert c["l"] == pytest.approx(111.0354, abs=1e-4) and c["b"] == pytest.approx(51.2857, abs=1e-4)
    assert c["geocentricmeanecliptic"]["lambda"] == pytest.approx(157.2156, abs=1e-4)
    assert c["geocentricmeanecliptic"]["beta"] == pytest.approx(65.9142, abs=1e-4)
    assert doc["classifications"] == {}
    assert "prv_candidates" not in doc and "fp_hists" not in doc
    assert all(k in doc for k in CUTOUTS)
    assert len(hist["prv_candidates"]) == 31 and hist["fp_hists"] == []


def test_coordinates_against_astropy(ztf):
    """Galactic and sexagesimal values agree with astropy on every real alert."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    docs = []
    for f in sorted(shared_data(*ZTF_2023).glob("*.avro")) + sorted(shared_data(*ZTF_2020).glob("*.avro")):
        docs += mongify(decode(f.read_bytes(), ztf), ztf)[0]
    ra = np.array([d["candidate"]["ra"] for d in docs])
    dec = np.array([d["candidate"]["dec"] for d in docs])
    sc = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    gal = sc.galactic
    l_ = np.array([d["coordinates"]["l"] for d in docs]) % 360
    b_ = np.array([d["coordinates"]["b"] for d in docs])
    assert np.abs(l_ - gal.l.deg).max() < 2e-3 and np.abs(b_ - gal.b.deg).max() < 2e-3  # Murray 1989 matrix
    for d in docs:
        hms, dms = d["coordinates"]["radec_str"]
        h, m, sec = (float(x) for x in hms.split(":"))
        dd, dm, ds = (float(x) for x in dms.lstrip("-").split(":"))
        sign = -1 if dms.startswith("-") else 1
        assert len(hms) == 13 and len(dms.lstrip("-")) == 12
        assert abs(15 * (h + m / 60 + sec / 3600) - d["candidate"]["ra"]) * 3600 < 15 * 0.5e-4 + 1e-9
        assert abs(sign * (dd + dm / 60 + ds / 3600) - d["candidate"]["dec"]) * 3600 < 0.5e-3 + 1e-9
        assert d["coordinates"]["radec_geojson"]["coordinates"][0] == pytest.approx(d["candidate"]["ra"] - 180)
    # Appendix A's example document (candid 2475433850015010009)
    fp_doc = next(d for d in docs if d["candid"] == FP_CANDID)
    assert fp_doc["coordinates"]["radec_str"] == ["03:07:59.3699", "09:22:04.565"]
    assert fp_doc["coordinates"]["radec_geojson"]["coordinates"] == pytest.approx([-133.0026253, 9.3679347])


def test_mongify_fp_hists_reference(ztf):
    raw = list(fastavro.reader(io.BytesIO(_bytes(*ZTF_2023, f"{FP_CANDID}.avro"))))[0]
    doc, hist = _mongified(ztf, *ZTF_2023, f"{FP_CANDID}.avro")
    assert doc["candid"] == FP_CANDID
    prv, fp = hist["prv_candidates"], hist["fp_hists"]
    assert len(prv) == 20 and len(fp) == 21
    assert all(a["jd"] < b["jd"] for a, b in zip(fp, fp[1:]))
    assert all(v not in (None, -99999, -99999.0) for e in fp for v in e.values())
    assert all(v is not None for e in prv for v in e.values())
    raw_fp = sorted(raw["fp_hists"], key=lambda e: e["jd"])
    assert raw_fp[0]["forcediffimflux"] == -99999 and "forcediffimflux" not in fp[0]
    for entry, src in zip(fp, raw_fp):
        assert entry["alert_mag"] == raw["candidate"]["magpsf"]
        assert (entry["alert_ra"], entry["alert_dec"]) == (raw["candidate"]["ra"], raw["candidate"]["dec"])
        f, e = src["forcediffimflux"], src["forcediffimfluxunc"]
        if f not in (None, -99999) and e not in (None, -99999):
            assert entry["snr"] == pytest.approx(f / e)
            if f > 0:
                assert entry["mag"] == pytest.approx(-2.5 * np.log10(f) + src["magzpsci"])
                assert entry["limmag5sig"] == pytest.approx(-2.5 * np.log10(5 * e) + src["magzpsci"])
            else:
                assert "mag" not in entry
    assert sum("mag" in e for e in fp) > 0


# --- history ----------------------------------------------------------------------------------

def test_fp_hists_update_scenario(ztf):
    """Kowalski's test_ingest_alert_with_fp_hists: 14 -> 19 -> 21, brightest alert wins per jd."""
    raw = list(fastavro.reader(io.BytesIO(_bytes(*ZTF_2023, f"{FP_CANDID}.avro"))))[0]
    cand = raw["candidate"]
    full = history.format_fp_hists(raw["fp_hists"], cand, ztf)
    assert len(full) == 21
    alert_mag = cand["magpsf"]
    stored = full[: int(0.7 * len(full))]  # Kowalski's fp_cutoff=0.7
    assert len(stored) == 14
    faint = history.format_fp_hists(raw["fp_hists"], {**cand, "magpsf": 30.0}, ztf)[-10:][:-2]
    stored = history.merge_fp(stored, faint)
    assert len(stored) == 19
    assert [e["alert_mag"] for e in stored] == [alert_mag] * 14 + [30.0] * 5
    bright = history.format_fp_hists(raw["fp_hists"], {**cand, "magpsf": 15.0}, ztf)[-10:]
    stored = history.merge_fp(stored, bright)
    assert len(stored) == 21
    assert [e["alert_mag"] for e in stored] == [alert_mag] * 11 + [15.0] * 10
    assert all(a["jd"] < b["jd"] for a, b in zip(stored, stored[1:]))
    assert stored[:11] == full[:11]


def test_fp_cutoff_for_new_objects(cfg):
    """Kowalski's cutoff, when configured (the default archives all forced photometry)."""
    default = get_survey("ztf", cfg)
    ztf = get_survey("ztf", {**cfg, "surveys": {**cfg["surveys"], "ztf": {**cfg["surveys"]["ztf"], "fp_hists_cutoff": True}}})
    doc, hist = _mongified(ztf, *ZTF_2023, f"{FP_CANDID}.avro")
    assert len(history.merge_history(None, [(doc["candidate"], hist, True)], default)["fp_hists"]) == 21
    cand = doc["candidate"]
    assert cand["ndethist"] > 1 and cand["jd"] - cand["jdstarthist"] >= 30  # an old object
    merged = history.merge_history(None, [(cand, hist, True)], ztf)
    assert merged["fp_hists"] == [] and len(merged["prv_candidates"]) == 20
    young = {**cand, "jdstarthist": cand["jd"] - 5}
    assert len(history.merge_history(None, [(young, hist, True)], ztf)["fp_hists"]) == 21
    first = {**cand, "ndethist": 1}
    assert len(history.merge_history(None, [(first, hist, True)], ztf)["fp_hists"]) == 21
    # an existing object merges a fresh alert's fp_hists, not a re-delivered one's
    existing = {"_id": doc["objectId"], "prv_candidates": [], "fp_hists": []}
    assert len(history.merge_history(existing, [(cand, hist, True)], ztf)["fp_hists"]) == 21
    assert history.merge_history(existing, [(cand, hist, False)], ztf)["fp_hists"] == []


def test_prv_candidates_merge(ztf):
    _, hist = _mongified(ztf, *ZTF_2023, f"{FP_CANDID}.avro")
    prv = hist["prv_candidates"]
    assert any(p.get("candid") is None for p in prv)  # non-detections: identified by jd + fid
    half = history.merge_prv([], prv[:12], ztf)
    merged = history.merge_prv(half, prv[8:] + prv[:3], ztf)
    assert merged == sorted(prv, key=lambda p: p["jd"])
    assert history.merge_prv(merged, prv, ztf) == merged
    with_none = [{**p, "magpsf": None} for p in prv[:2]]
    assert all("magpsf" not in p for p in history.clean_prv(with_none, ztf))


# --- decode ---------------------------------------------------------------------------------------

def test_decode_all_surveys(cfg):
    for name, parts, n in [("ztf", ZTF_2023, 24), ("pgir", ("alerts", "kowalski", "pgir_alerts"), 17),
                           ("wntr", ("alerts", "kowalski", "wntr_alerts"), 11),
                           ("turbo", ("alerts", "kowalski", "turbo_alerts"), 11)]:
        survey = get_survey(name, cfg)
        packets = [p for f in sorted(shared_data(*parts).rglob("*.avro")) for p in decode(f.read_bytes(), survey)]
        assert len(packets) == n, name
        assert all(isinstance(p[survey.object_id], str) and p["candidate"]["jd"] > 2.4e6 for p in packets)


def test_turbo_schema_is_repaired():
    data = _bytes("alerts", "kowalski", "turbo_alerts", "1.avro")
    with pytest.raises(Exception, match="Default value"):
        fastavro.reader(io.BytesIO(data))  # strict fastavro rejects the writer schema
    (rec,) = read_container(data)
    assert rec["objectId"].startswith("None.") and isinstance(rec["candid"], int)
    assert rec["candidate"]["fid"] is not None and isinstance(rec["cutoutScience"], bytes)


def test_containers_read_as_fastavro_reads_them():
    """The schema-caching reader gives fastavro's records for every real container, for deflate
    and many-block containers, bzip2 and xz; an unknown codec is refused by name."""
    for folder in ("ztf_alerts", "pgir_alerts", "wntr_alerts"):
        files = sorted(shared_data("alerts", "kowalski", folder).rglob("*.avro"))
        assert files, folder
        for f in files:
            data = f.read_bytes()
            # repr: equal values, NaN included (WINTER's sumrat), and the same field order
            assert repr(read_container(data)) == repr(list(fastavro.reader(io.BytesIO(data)))), f
    data = _bytes(*ZTF_2023, f"{FP_CANDID}.avro")
    reader = fastavro.reader(io.BytesIO(data))
    schema, (record,) = reader.writer_schema, list(reader)
    copies = [{**record, "candid": record["candid"] + k} for k in range(5)]
    for codec, sync_interval in (("deflate", 16000), ("null", 1), ("bzip2", 16000), ("xz", 16000)):
        out = io.BytesIO()
        fastavro.writer(out, schema, copies, codec=codec, sync_interval=sync_interval)
        assert [r["candid"] for r in read_container(out.getvalue())] == [r["candid"] for r in copies], codec
    out = io.BytesIO()
    fastavro.writer(out, schema, copies, sync_interval=1)
    broken = bytearray(out.getvalue())
    broken[-1] ^= 0xFF  # the last block's sync marker
    with pytest.raises(AlertError, match="truncated or corrupt Avro container.*sync marker"):
        read_container(bytes(broken))
    out = io.BytesIO()
    fastavro.writer(out, schema, copies)
    assert out.getvalue().count(b"avro.codec\x08null") == 1  # the header's codec entry: 4 bytes
    with pytest.raises(AlertError, match="unsupported Avro codec 'lzzz'"):
        read_container(out.getvalue().replace(b"avro.codec\x08null", b"avro.codec\x08lzzz"))
    out = io.BytesIO()
    fastavro.writer(out, schema, [])
    with pytest.raises(AlertError, match="holds no records"):
        read_container(out.getvalue())


def test_lsst_decodes_with_real_values(cfg):
    lsst = get_survey("lsst", cfg)
    data = _bytes("alerts", "boom", "lsst", "7912941781254298.avro")
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == 900  # Confluent frame, schema 9.0
    assert lsst.version_for(900) == "9.0"
    (p,) = decode(data, lsst)
    assert p["candid"] == 7912941781254298 == p["diaSourceId"] == p["candidate"]["diaSourceId"]
    assert p["objectId"] == str(p["candidate"]["diaObjectId"])
    assert p["candidate"]["ra"] == pytest.approx(55.75212760972686)
    assert p["candidate"]["dec"] == pytest.approx(-32.26847858422095)
    assert p["candidate"]["jd"] == pytest.approx(p["candidate"]["midpointMjdTai"] + 2400000.5)
    assert 60900 < p["candidate"]["midpointMjdTai"] < 61100 and p["candidate"]["band"] in "ugrizy"
    assert p["prv_candidates"] == [] and p["fp_hists"] == []
    docs, hist = mongify([p], lsst)
    assert docs[0]["coordinates"]["radec_str"][1].startswith("-32:16:")
    # the same body also reads with v10.0 (only MPCORB/mpc_orbits differ, null here), not v11.0
    body = io.BytesIO(data[5:])
    rec10 = fastavro.schemaless_reader(body, lsst.schema("10.0"))
    assert body.tell() == len(data) - 5 and rec10["diaSource"]["ra"] == p["candidate"]["ra"]


def test_bad_input_reasons(cfg, ztf):
    good = _bytes(*ZTF_2023, f"{FP_CANDID}.avro")
    cases = [
        (b"\x13\x37 garbage, not avro at all", "not an Avro container file"),
        (good[: len(good) // 2], "truncated or corrupt Avro container"),
        (good[:40], "Avro container"),
        (b"", "empty message"),
        (_without_candidate_field(good, "ra"), "missing required field candidate.ra"),
    ]
    for data, reason in cases:
        with pytest.raises(AlertError, match=reason):
            decode(data, ztf)
    lsst = get_survey("lsst", cfg)
    body = _bytes("alerts", "boom", "lsst", "7912941781254298.avro")[5:]
    with pytest.raises(AlertError, match="unknown schema id 7"):
        decode(b"\x00" + struct.pack(">I", 7) + body, lsst)
    with pytest.raises(AlertError, match="not a Confluent wire frame"):
        decode(good, lsst)
    with pytest.raises(AlertError, match="bytes left after the LSST alert body"):
        decode(b"\x00" + struct.pack(">I", 900) + body + b"\x00\x00", lsst)


def test_mixed_batch_keeps_good_alerts(cfg):
    files = sorted(shared_data(*ZTF_2023).glob("*.avro"))[:3]
    good = [f.read_bytes() for f in files]
    msgs = [good[0], b"garbage", good[1][:500], _without_candidate_field(good[2], "ra"), good[2]]
    result = process_messages("ztf", msgs, cfg)
    assert isinstance(result, BatchResult) and result.n_messages == 5
    assert [i for i, _ in result.failed] == [1, 2, 3]
    assert "not an Avro container file" in result.failed[0][1]
    assert "missing required field candidate.ra" in result.failed[2][1]
    assert result.sources == [0, 4] and len(result.alerts) == len(result.history) == 2
    assert all(len([k for k in d["classifications"] if not k.endswith("_version")]) == 6 for d in result.alerts)
    assert set(result.timings) >= {"decode", "mongify", "ml"}
    import pickle

    assert pickle.loads(pickle.dumps(result)).alerts[0]["candid"] == result.alerts[0]["candid"]


# --- ML -------------------------------------------------------------------------------------------

def test_onnx_models_match_tensorflow_reference(cfg, ztf):
    ref = np.load(shared_data("models", "reference_io.npz"))
    clf = Classifier.from_config(cfg, ztf)
    assert {m.name for m in clf.models} == {"acai_h", "acai_v", "acai_o", "acai_n", "acai_b", "bts"}
    for model in clf.models:
        is_bts = model.name == "bts"
        for kind in ("example", "random"):
            feats = ref[f"{kind}_btsbot_metadata" if is_bts else f"{kind}_acai_features"]
            expected = ref[f"tf_btsbot_{kind}" if is_bts else f"tf_{model.name}_{kind}"]
            scores = run_model(model, ref[f"{kind}_triplets"], feats)
            assert np.abs(scores - expected).max() < 1e-5, (model.name, kind)
            one = run_model(model, ref[f"{kind}_triplets"][:1], feats[:1])
            assert abs(one[0] - expected[0]) < 1e-5


def _reference_triplet(packet) -> np.ndarray:
    """models/README.md preprocessing with astropy.io.fits, in float32 as the reference code."""
    from astropy.io import fits

    chans = []
    for k in CUTOUTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(gzip.decompress(packet[k]["stampData"])), ignore_missing_simple=True) as h:
                x = np.nan_to_num(h[0].data)
            x = x / np.linalg.norm(x)
        x = np.pad(x, [(0, 63 - x.shape[0]), (0, 63 - x.shape[1])], constant_values=1e-9)
        chans.append(x)
    return np.stack(chans, axis=-1).astype(np.float32)


def test_triplets_match_reference_preprocessing(ztf):
    packets = [p for f in sorted(shared_data(*ZTF_2023).glob("*.avro")) for p in decode(f.read_bytes(), ztf)]
    trip, ok, failed = prepare_triplets(packets, ztf)
    assert failed == [] and trip.shape == (len(packets), 63, 63, 3) and trip.dtype == np.float32
    for j, i in enumerate(ok):
        assert np.abs(trip[j] - _reference_triplet(packets[i])).max() < 1e-6
    # a smaller cutout (a real one, cropped) is normalised first, then padded with 1e-9
    from astropy.io import fits

    p = packets[0]
    img = read_fits_image(p["cutoutScience"]["stampData"])[:50, :47]
    buf = io.BytesIO()
    fits.PrimaryHDU(img).writeto(buf)
    small = {**p, "cutoutScience": {"fileName": "x", "stampData": gzip.compress(buf.getvalue())}}
    trip2, _, _ = prepare_triplets([small], ztf)
    assert np.abs(trip2[0] - _reference_triplet(small)).max() < 1e-6
    assert np.all(trip2[0, 50:, :, 0] == np.float32(1e-9)) and np.all(trip2[0, :, 47:, 0] == np.float32(1e-9))


def test_alert_without_usable_cutouts_is_kept_unscored(cfg):
    data = _bytes(*ZTF_2023, f"{FP_CANDID}.avro")
    rec = list(fastavro.reader(io.BytesIO(data)))
    reader = fastavro.reader(io.BytesIO(data))
    rec[0]["cutoutTemplate"]["stampData"] = gzip.compress(b"not a fits file")
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(reader.writer_schema), rec)
    result = process_messages("ztf", [out.getvalue(), data], cfg)
    assert result.failed == [] and len(result.alerts) == 2
    assert result.alerts[0]["classifications"] == {}
    assert len(result.alerts[1]["classifications"]) == 12
    assert result.ml_skipped and result.ml_skipped[0][0] == 0 and "cutoutTemplate" in result.ml_skipped[0][1]


def test_btsbot_history_features(ztf):
    from broker.stages.ml import history_features

    doc, hist = _mongified(ztf, *ZTF_2020, f"{REF_CANDID}.avro")
    cand = doc["candidate"]
    f = history_features(cand, hist["prv_candidates"])
    dets = [p for p in hist["prv_candidates"] if p.get("magpsf") is not None] + [cand]
    mags = [p["magpsf"] for p in dets]
    peak = min(dets, key=lambda p: (p["magpsf"], p["jd"]))
    first = min(min(p["jd"] for p in dets), cand["jdstarthist"])
    assert f["peakmag_so_far"] == min(mags) and f["maxmag_so_far"] == max(mags)
    assert f["days_since_peak"] == pytest.approx(cand["jd"] - peak["jd"])
    assert f["days_to_peak"] == pytest.approx(peak["jd"] - first)
    assert f["age"] == pytest.approx(cand["jd"] - first)
    assert f["nnotdet"] == cand["ncovhist"] - cand["ndethist"]
    # later points do not count ("so far")
    later = [{"jd": cand["jd"] + 1, "magpsf": 5.0}]
    assert history_features(cand, hist["prv_candidates"] + later) == f


def test_sexagesimal_edges():
    from broker.stages.mongify import radec_strings

    out = radec_strings(np.array([359.99999999, 0.0, 180.0]), np.array([-0.5, -89.99999999, 10.25]))
    assert out == [["00:00:00.0000", "-00:30:00.000"], ["00:00:00.0000", "-90:00:00.000"],
                   ["12:00:00.0000", "10:15:00.000"]]
