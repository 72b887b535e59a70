"""Backtests (kowalski/filters/backtest.py and `kowalski filter backtest`) on the real 20231012 alerts,
in process, on a Dask cluster, and through the command line."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from kowalski.filters.backtest import BacktestError, backtest
from broker.pipeline import ingest_files
from kowalski import db
from tests.conftest import ROOT, shared_data

LOOSE = [{"$match": {"candidate.drb": {"$gt": 0.5}}},
         {"$addFields": {"annotations.mean_rb": {"$avg": "$prv_candidates.rb"}}},
         {"$project": {"_id": 0, "candid": 1, "objectId": 1, "annotations": 1}}]
STRICT = [{"$match": {"candidate.drb": {"$gt": 0.9999}}}, {"$project": {"_id": 0, "candid": 1}}]
DAY = (2460229.9338542, 2460230.9338542)


@pytest.fixture(scope="module")
def archive(config):
    totals = ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))
    assert totals["inserted"] == 24
    now = dt.datetime(2026, 1, 1)
    db.filters_collection(config).insert_one({
        "filter_id": 5, "group_id": 1, "catalog": "ZTF_alerts", "permissions": [1, 2], "active": True,
        "autosave": False, "auto_followup": {}, "update_annotations": False, "active_fid": "strict",
        "fv": [{"fid": "strict", "pipeline": json.dumps(STRICT), "created_at": now},
               {"fid": "loose1", "pipeline": json.dumps(LOOSE), "created_at": now}],
        "created_at": now, "last_modified": now})
    return config


def cli(config, *args):
    env = {**os.environ, "KOWALSKI_DATABASE__NAME": config["database"]["name"]}
    return subprocess.run([sys.executable, "-m", "kowalski.cli", "filter", "backtest", *args], env=env,
                          cwd=str(ROOT), capture_output=True, text=True)


def test_backtest_in_process(archive):
    doc = db.filters_collection(archive).find_one({"filter_id": 5})
    seen = []
    version, s = backtest(archive, doc, start_jd=DAY[0], end_jd=DAY[1], progress=lambda x: seen.append(x.alerts),
                          chunk_size=10)
    assert version["fid"] == "loose1"  # the last version, as Kowalski's /test
    assert (s.alerts, s.passed, s.errors) == (24, 22, 0) and s.rate == pytest.approx(22 / 24)
    assert seen == [10, 20, 24]
    assert all(set(o) == {"candid", "objectId", "annotations"} for o in s.outputs)
    _, s = backtest(archive, doc, object_ids=["ZTF17aadcvhq"])
    assert s.passed == 1
    _, s = backtest(archive, doc, fid="strict", object_ids=["ZTF17aadcvhq"])
    assert s.passed == 0
    with pytest.raises(BacktestError, match="Filter version nope not found"):
        backtest(archive, doc, fid="nope")


def test_backtest_on_dask(archive):
    from dask.distributed import Client, LocalCluster

    doc = db.filters_collection(archive).find_one({"filter_id": 5})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        _, s = backtest(archive, doc, start_jd=DAY[0], end_jd=DAY[1], client=client, chunk_size=5)
    assert (s.alerts, s.passed) == (24, 22)
    assert sorted(o["candid"] for o in s.outputs) == sorted(
        o["candid"] for o in backtest(archive, doc, start_jd=DAY[0], end_jd=DAY[1])[1].outputs)


def test_cli_backtest(archive, tmp_path):
    out = tmp_path / "passed.jsonl"
    r = cli(archive, "--filter-id", "5", "--start", str(DAY[0]), "--end", str(DAY[1]), "--json", "--output", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["alerts"] == 24 and summary["passed"] == 22 and summary["fid"] == "loose1"
    assert len(out.read_text().splitlines()) == 22
    assert "backtest" in r.stderr  # progress

    r = cli(archive, "--filter-id", "5", "--fid", "strict", "--object-ids", "ZTF17aadcvhq", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("filter 5 version strict on ZTF_alerts: 0 of 1 alerts passed") and "on Dask" in r.stdout

    r = cli(archive, "--pipeline", json.dumps(LOOSE), "--permissions", "1", "--start", "2023-10-12T10:24:16",
            "--end", "2023-10-13T10:24:16", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["passed"] == 22


@pytest.mark.parametrize("args,message", [
    (["--filter-id", "99"], "Filter id 99 not found"),
    (["--pipeline", '[{"$matc": {}}]'], "pipeline refused: unsupported stage $matc"),
    (["--filter-id", "5", "--start", "2460229.9"], "--start and --end go together"),
    (["--filter-id", "5", "--start", "yesterday", "--end", "today"], "--start is not a valid time"),
    (["--pipeline", '[{"$match": {}}]', "--catalog", "NOPE_alerts"], "unknown catalog 'NOPE_alerts'"),
    ([], "give --filter-id N"),
])
def test_cli_errors_are_one_line(archive, args, message):
    r = cli(archive, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("kowalski: error: ") and message in lines[-1], r.stderr
