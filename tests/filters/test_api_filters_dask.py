"""POST /api/filters/{id}/test on a Dask cluster (filters.dask_scheduler), and the fallback when
the scheduler is unreachable."""

from __future__ import annotations

import pytest
from dask.distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from broker.pipeline import ingest_files
from tests.api.conftest import Api, free_port, start_server, stop_server
from tests.conftest import shared_data

LOOSE = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1, "objectId": 1}}]
DAY = {"start_date": 2460229.9338542, "end_date": 2460230.9338542}


@pytest.fixture(scope="module")
def archive(config):
    assert ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))["inserted"] == 24
    return config


class TaskRecorder(SchedulerPlugin):
    """Installed by the test on its own scheduler: records every task that finished on a worker.

    The scheduler's own ``task_groups`` forget finished tasks once their results are released, so an
    assertion on them failed about one run in ten; this record is the test's and is never pruned."""

    name = "kowalski-test-task-recorder"

    def __init__(self):
        self.finished: list[tuple[str, str | None]] = []  # (key, worker address)

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish == "memory":
            self.finished.append((str(key), kwargs.get("worker")))


@pytest.mark.parametrize("scheduler", ["cluster", "unreachable"])
def test_test_endpoint_on_dask(archive, scheduler):
    cluster = None
    if scheduler == "cluster":
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster.scheduler_address
        with Client(cluster) as c:
            c.register_plugin(TaskRecorder())
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
        if cluster is not None:  # the evaluation ran on the cluster's worker
            finished = cluster.scheduler.plugins[TaskRecorder.name].finished
            ran = [(k, w) for k, w in finished if k.startswith("evaluate_chunk")]
            assert ran and {w for _, w in ran} <= set(cluster.scheduler.workers), finished
    finally:
        stop_server(proc)
        if cluster is not None:
            cluster.close()
