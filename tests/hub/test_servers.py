"""Users' servers and Dask clusters: each server runs as its user (its own Kowalski token and
data rights), gets the dask-gateway settings, and `Gateway().new_cluster()` gives a cluster within
the configured limits; asking past them is refused with a clear message. `kowalski down hub`
stops servers and clusters: nothing of the hub is left running."""

from __future__ import annotations

import json
import textwrap

from tests.api.realdata import DEC, RA
from tests.hub.conftest import processes_of, run_as_user


def _cmdlines(pids):
    out = []
    for pid in pids:
        try:
            out.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return out


def test_server_environment_and_data_rights(hub_stack):
    private = hub_stack.archive["private_candids"]
    ra, dec = RA, DEC
    seen = {}
    for who, perms in (("public", None), ("programid2", {"ztf": [1, 2]})):
        name, env = hub_stack.user_server(perms)
        assert env["KOWALSKI_URL"] == hub_stack.api_url
        assert env["HOME"] == str(hub_stack.state / "users" / name)
        assert env["DASK_GATEWAY__ADDRESS"] == hub_stack.url + "/services/dask-gateway"
        assert env["DASK_GATEWAY__PROXY_ADDRESS"].startswith("gateway://127.0.0.1:")
        assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "/services/dask-gateway/"
        assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
        # the token in the server is this user's: the API sees exactly what the user may see
        r = run_as_user(env, textwrap.dedent(f"""
            from kowalski.client import connect
            k = connect()  # KOWALSKI_URL and KOWALSKI_TOKEN, as the hub set them
            print(len(k.alerts({{"candid": {{"$in": {list(private)}}}}})), len(k.cone({ra}, {dec}, 2)))
        """))
        assert r.returncode == 0, r.stderr
        seen[who] = tuple(int(x) for x in r.stdout.split())
    # a programid-2 copy of the alert at (ra, dec) is visible only to the programid-2 user
    assert seen == {"public": (0, 1), "programid2": (len(private), 2)}


GATEWAY_SCRIPT = """
import json, warnings
from dask_gateway import Gateway
out = {}
g = Gateway()
a = g.new_cluster()
a.scale(2)
client = a.get_client()
client.wait_for_workers(2, timeout=120)
out["workers"] = len(client.scheduler_info()["workers"])
out["imports"] = client.submit(lambda: __import__("kowalski.config").config.__name__).result()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    a.scale(50)
    out["scale_warning"] = [str(x.message) for x in w]
try:
    g.new_cluster(worker_cores=64)
except Exception as exc:
    out["cores_error"] = str(exc)
b = g.new_cluster()
try:
    g.new_cluster()
except Exception as exc:
    out["clusters_error"] = str(exc)
client.close()
for c in (a, b):
    c.shutdown()
out["left"] = [c.name for c in g.list_clusters()]
print(json.dumps(out))
"""


def test_gateway_cluster_and_limits(hub_stack):
    name, env = hub_stack.user_server()
    r = run_as_user(env, GATEWAY_SCRIPT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["workers"] == 2 and out["imports"] == "kowalski.config"
    limit = hub_stack.config["hub"]["gateway"]
    assert any(f"limit of {limit['cluster_max_workers']} workers" in m for m in out["scale_warning"]), out
    assert "worker_cores" in out["cores_error"] and str(limit["worker_cores_max"]) in out["cores_error"], out
    assert f"the limit is {limit['clusters_per_user']} per user" in out["clusters_error"], out
    assert out["left"] == []


IDLE_SCRIPT = """
import json, time
from dask_gateway import Gateway
g = Gateway()
# a user may pick a shorter idle timeout. No worker and no client: a scheduler without work is idle
# from its start, so a worker that took longer than the timeout to join (a loaded machine) used to
# meet a cluster already stopped, and the client's reconnects failed the script
c = g.new_cluster(idle_timeout=3, shutdown_on_close=False)
try:
    g.new_cluster(idle_timeout=10**9)
except Exception as exc:
    refused = str(exc)
print(json.dumps({"name": c.name, "refused": refused}))
"""


def test_idle_cluster_is_shut_down(hub_stack):
    name, env = hub_stack.user_server()
    r = run_as_user(env, IDLE_SCRIPT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # never longer than the configured one
    assert "idle_timeout" in out["refused"] and str(hub_stack.config["hub"]["gateway"]["idle_timeout_s"]) in out["refused"]
    # the notebook process is gone, the cluster was left running with no work: the gateway stops it
    r = run_as_user(env, textwrap.dedent(f"""
        import time
        from dask_gateway import Gateway
        g = Gateway()
        end = time.monotonic() + 120
        while time.monotonic() < end and any(c.name == {out['name']!r} for c in g.list_clusters()):
            time.sleep(1)
        print(sorted(c.name for c in g.list_clusters()))
    """))
    assert r.returncode == 0, r.stderr[-3000:]
    assert out["name"] not in r.stdout


def test_down_stops_servers_and_clusters(hub_stack, tmp_path):
    other = hub_stack.sibling(tmp_path)
    other.up()
    try:
        st = other.kowalski("status", "hub")
        assert st.returncode == 0 and "healthy" in st.stdout, st.stdout
        name, env = other.user_server()
        # a cluster left running by the user (not shut down when the notebook ends)
        r = run_as_user(env, "from dask_gateway import Gateway\n"
                             "c = Gateway().new_cluster(shutdown_on_close=False)\n"
                             "c.scale(1)\nc.get_client().wait_for_workers(1, timeout=120)\nprint(c.name)")
        assert r.returncode == 0, r.stderr[-3000:]
        running = _cmdlines(other.leftovers())
        assert any("jupyterhub-singleuser" in c for c in running)
        assert any("dask scheduler" in c for c in running) and any("dask worker" in c for c in running)
        logs = other.kowalski("logs", "hub", "-n", "500")
        assert "JupyterHub is now running" in logs.stdout
    finally:
        down = other.down()
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert processes_of(str(other.state)) == []
    st = other.kowalski("status", "hub")
    assert st.returncode == 3 and "stopped" in st.stdout
