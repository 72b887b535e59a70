"""Property-based run (schemathesis) of the OpenAPI description of /api/filters and
/api/users/{username}/groups against a live server holding the real 20231012 alerts: no 5xx,
every status and body as described (tests/api/test_openapi.py leaves these routes to us)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broker.pipeline import ingest_files
from tests.api.conftest import Api, start_server, stop_server
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def api(config):
    assert ingest_files(config, "ztf", shared_data("alerts", "kowalski", "ztf_alerts", "20231012"))["inserted"] == 24
    proc, url, _ = start_server(config, processes=1)
    client = Api(url, config)
    client.add_user("member", "pw")
    assert client.put("/api/users/member/groups", {"groups": [1]}, token=client.admin_token).status_code == 200
    r = client.post("/api/filters", {"group_id": 1, "filter_id": 1, "catalog": "ZTF_alerts", "permissions": [1],
                                     "pipeline": [{"$match": {"candidate.drb": {"$gt": 2}}}]},
                    token=client.admin_token)
    assert r.status_code == 200, r.text
    yield client
    client.session.close()
    stop_server(proc)


@pytest.mark.parametrize("who", ["admin", "member"])
def test_schemathesis_filters(api, who, tmp_path):
    token = api.admin_token if who == "admin" else api.token("member", "pw")
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [str(exe), "run", f"{api.url}/docs/api/openapi.json", "-H", f"Authorization: {token}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance,ignored_auth",
           "-n", "40", "--seed", "11" if who == "admin" else "12", "--request-timeout", "30",
           "--generation-database", "none", "--include-path-regex", "^/api/(filters|users/[^/]+/groups)"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "passed" in out
    assert api.get("/", token=api.admin_token).status_code == 200
