"""``POST /api/filters/{id}/test`` answers how many alerts remain after each stage (``summary.
stage_counts``), on the real 20231012 alerts: the last is the pass count, a run of ``$match``
stages never lets more through, and each count is the pass count of that prefix run alone (saved
as a version of its own and tested through the API)."""

from __future__ import annotations

from tests.filters.test_api_filters import TEST_FILTER, api, post  # noqa: F401 - the module's API

DAY = {"start_date": 2460229.9338542, "end_date": 2460230.9338542}
MATCHES = 3  # the first three stages are $match only
PIPELINE = [
    {"$match": {"candidate.drb": {"$gt": 0.5}}},
    {"$match": {"candidate.isdiffpos": {"$in": ["t", "1", "true", True]}}},
    {"$match": {"candidate.magpsf": {"$lt": 19.5}}},
    {"$addFields": {"annotations.n_prv": {"$size": {"$ifNull": ["$prv_candidates", []]}}}},
    {"$unwind": "$prv_candidates"},
    {"$match": {"prv_candidates.magpsf": {"$ne": None}}},
    {"$group": {"_id": "$candid", "objectId": {"$first": "$objectId"}, "detections": {"$sum": 1}}},
    {"$project": {"_id": 0, "candid": "$_id", "objectId": 1, "detections": 1}},
]


def backtest(api, filter_id, body, fid=None) -> dict:
    r = api.post(f"/api/filters/{filter_id}/test", {**body, **({"filter_version": fid} if fid else {})},
                 token=api.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def save(api, filter_id, pipeline) -> str:
    r = post(api, {**TEST_FILTER, "filter_id": filter_id, "pipeline": pipeline, "active": False})
    assert r.status_code == 200, r.text
    return r.json()["data"]["fid"]


def test_stage_counts_on_the_real_alerts(api):
    save(api, 40, PIPELINE)
    answer = backtest(api, 40, DAY)
    s, data = answer["summary"], answer["data"]
    counts = s["stage_counts"]
    assert len(counts) == len(PIPELINE), s
    assert s["alerts"] == 24 and counts[0] == 22, s           # drb > 0.5: 22 of the 24 real alerts
    assert counts[-1] == s["passed"] == len(data), s
    assert all(a >= b for a, b in zip(counts[:MATCHES], counts[1:MATCHES])), f"$match prefixes grew: {counts}"
    assert len(set(counts)) >= 3, f"the stages should select step by step on these alerts: {counts}"
    assert 0 < s["passed"] < 22, s
    print("stage counts on the 20231012 night:", counts, "of", s["alerts"])


def test_each_count_is_its_prefix_run_alone(api):
    save(api, 41, PIPELINE)
    counts = backtest(api, 41, DAY)["summary"]["stage_counts"]
    for k in range(1, len(PIPELINE) + 1):
        fid = save(api, 41, PIPELINE[:k])
        alone = backtest(api, 41, DAY, fid)["summary"]
        assert alone["passed"] == counts[k - 1], (k, alone, counts)
        assert alone["stage_counts"] == counts[:k], (k, alone["stage_counts"], counts)


def test_object_ids_and_an_empty_selection(api):
    save(api, 42, PIPELINE)
    s = backtest(api, 42, {"object_ids": ["ZTF17aadcvhq"]})["summary"]
    assert s["alerts"] == 1 and s["stage_counts"][:2] == [1, 0], s     # drb 0.993, but isdiffpos 'f'
    s = backtest(api, 42, {"start_date": 2460000.5, "end_date": 2460001.0})["summary"]
    assert s["alerts"] == 0 and s["stage_counts"] == [0] * len(PIPELINE), s


def test_a_stage_failing_at_run_time(api, config):
    """Alerts whose run fails at stage 2 are errors; they count after stage 1, which passes them
    alone. (Through the engine directly: the API's dry run refuses to save such a version.)"""
    from kowalski.filters.backtest import evaluate_chunk
    from kowalski import db

    failing = [PIPELINE[0], {"$addFields": {"x": {"$divide": [1, {"$subtract": ["$candidate.fid", 1]}]}}},
               {"$project": {"_id": 0, "candid": 1}}]  # every real alert is g band (fid 1): 1 / 0
    d = db.get_db(config)
    alerts = list(d["ZTF_alerts"].find({}, {"cutoutScience": 0, "cutoutTemplate": 0, "cutoutDifference": 0}))
    aux = {x["_id"]: x for x in d["ZTF_alerts_aux"].find({})}
    n, outputs, errors, first, counts = evaluate_chunk(failing, alerts, aux, [1, 2], "ztf", True, True)
    assert (n, len(outputs), errors, counts) == (24, 0, 22, [22, 0, 0]), (n, errors, first, counts)
    assert "divide by zero" in first, first
    assert evaluate_chunk(failing[:1], alerts, aux, [1, 2], "ztf", True, True)[4] == [22]
