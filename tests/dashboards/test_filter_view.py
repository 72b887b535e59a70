"""The filter editor's and broker monitor's figures (pure functions): the backtest form as a /test
request, the per-stage table, version diffs, and the broker's real /stats snapshot as tables."""

from __future__ import annotations

import json
import math

import pytest

from broker.metrics import BrokerStats
from dashboards.broker_stats import BrokerDown, Rates, headline, read_stats, stages_frame as broker_stages
from dashboards.broker_stats import surveys_frame
from dashboards.filter_view import backtest_body, parse_permissions, stages_frame, version_diff, versions_frame
from dashboards.search import InputError
from tests.api.conftest import free_port

PIPELINE = json.dumps([{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$addFields": {"x": 1}},
                       {"$project": {"_id": 0, "candid": 1}}])


def test_backtest_form_as_a_test_request():
    assert backtest_body("2460229.5", "2023-10-13", "", "abc123") == {
        "start_date": 2460229.5, "end_date": 2460230.5, "filter_version": "abc123"}
    assert backtest_body("", "", "ZTF17aadcvhq, ZTF18acgbhmc", None) == {"object_ids": ["ZTF17aadcvhq", "ZTF18acgbhmc"]}


@pytest.mark.parametrize("start, end, ids, says", [
    ("", "", "", "give a range"), ("2460229.5", "", "", "both ends"), ("2460230.5", "2460229.5", "", "before its start"),
    ("yesterday", "2460229.5", "", "neither a JD nor a date"), ("12", "13", "", "between 2400000 and 2600000")])
def test_backtest_form_bad_input(start, end, ids, says):
    with pytest.raises(InputError, match=says):
        backtest_body(start, end, ids, None)


def test_permissions():
    assert parse_permissions("1, 2") == [1, 2]
    for bad in ("", "one", "1.5"):
        with pytest.raises(InputError):
            parse_permissions(bad)


def test_stage_table_from_the_answer():
    df = stages_frame(PIPELINE, {"alerts": 24, "stage_counts": [22, 22, 22], "passed": 22})
    assert df["operator"].tolist() == ["$match", "$addFields", "$project"]
    assert df["remaining"].tolist() == [22, 22, 22] and df["dropped"].tolist() == [2, 0, 0]
    assert df["share"].iloc[0] == "91.7%"
    assert stages_frame(PIPELINE, {"alerts": 0, "stage_counts": [0, 0, 0]})["share"].tolist() == ["–"] * 3


def test_versions_and_their_diff():
    doc = {"active": False, "active_fid": "b", "fv": [{"fid": "a", "pipeline": PIPELINE, "created_at": "2026-01-01"},
                                                      {"fid": "b", "pipeline": PIPELINE.replace("0.5", "0.9")}]}
    assert versions_frame(doc)["fid"].tolist() == ["b", "a"]      # newest first
    d = version_diff(doc, "b")
    assert '-        "$gt": 0.5' in d and '+        "$gt": 0.9' in d, d
    assert version_diff(doc, "a") == "" and version_diff(doc, "zz") == ""


def test_broker_figures_from_a_real_snapshot():
    stats = BrokerStats(["ztf"])
    stats.state = "running"
    stats.started -= 10.0  # up for 10 s
    stats.record_batch("ztf", 10, {"stored": 9, "duplicates": 1}, {"decode": 0.05, "ml": 0.2}, 0.1, [0.5] * 9)
    snap = json.loads(json.dumps(stats.snapshot(1000)))  # as /stats sends it
    rates = Rates()
    first = rates.update(snap, now=100.0)
    assert first["ztf"] == pytest.approx(1.0, rel=0.05)          # before a second read: 10 alerts in 10 s
    stats.record_batch("ztf", 20, {"stored": 20}, {"decode": 0.1}, 0.1, [0.4] * 20)
    assert rates.update(json.loads(json.dumps(stats.snapshot())), now=102.0) == {"ztf": 10.0}
    row = surveys_frame(snap, first).iloc[0]
    assert (row["survey"], row["stored"], row["duplicates"], row["Kafka lag"]) == ("ztf", 9, 1, "not reported")
    st = broker_stages(snap).set_index("stage")["ztf"]
    assert st["ml"] == pytest.approx(20.0) and st["store"] == pytest.approx(10.0)
    assert "Broker running" in headline(snap) and "9 alerts stored" in headline(snap) and "0.50 s" in headline(snap)
    empty = BrokerStats(["ztf"]).snapshot()
    assert math.isnan(empty["latency_s"]["p50"]) and "no alert stored yet" in headline(empty)


def test_no_broker_is_a_message():
    url = f"http://127.0.0.1:{free_port()}/stats"
    with pytest.raises(BrokerDown, match="Broker not running: nothing answers at " + url):
        read_stats(url)
