"""POST /api/filters/{id}/test on a Dask cluster (filters.dask_scheduler), and the fallback when
the scheduler is unreachable."""

from __future__ import annotations

import pytest
from dask.distributed import LocalCluster

from broker.pipeline import ingest_files
from tests.api.conftest import Api, free_port, start_server, stop_server
from tests.conftest import shared_data

LOOSE = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1, "objectId": 1}}]
DAY = {"start_date": 2460229.9338542, "end_date": 2460230.9338542}


@pytest.fixture(scope="module")
def archive(config):
    assert ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))["inserted"] == 24
    return config


@pytest.mark.parametrize("scheduler", ["cluster", "unreachable"])
def test_test_endpoint_on_dask(archive, scheduler):
    cluster = None
    if scheduler == "cluster":
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    else:
        address = f"tcp://127.0.0.1:{free_port()}"
    proc, url, _ = start_server(archive, processes=1, extra_env={"KOWALSKI_FILTERS__DASK_SCHEDULER": address})
    try:
        api = Api(url, archive)
        r = api.post("/api/filters", {"group_id": 1, "filter_id": 1, "catalog": "ZTF_alerts", "permissions": [1],
                                      "pipeline": LOOSE, "active": False}, token=api.admin_token)
        assert r.status_code == 200, r.text
        r = api.post("/api/filters/1/test", DAY, token=api.admin_token)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) == 22 and body["summary"]["passed"] == 22
        assert body["summary"]["dask"] is (scheduler == "cluster")
        if cluster is not None:
            assert any(k.startswith("evaluate_chunk") for k in cluster.scheduler.task_groups)  # ran there
    finally:
        stop_server(proc)
        if cluster is not None:
            cluster.close()
