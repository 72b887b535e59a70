"""`kowalski bench hub`: login-to-ready and gateway figures of a running hub (`kowalski up`).

Prints, for the hub and API of the current config:
  * login to a ready user server (POST /hub/login -> server ready -> JupyterLab page answers):
    p50/p95/max over N new users (each server is stopped afterwards);
  * ``new_cluster()`` to 2 workers ready on dask-gateway, as a user (a hub token with the gateway
    scope), over R rounds;
  * a backtest of every night of the archive: in the API process vs fanned out on a 2-worker
    gateway cluster (one filter of the admin's, removed afterwards).
Benchmark users are named ``bench-hub-<n>``; they are created through the API and left in place.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid

from kowalski.bench import get_bench_subparsers, percentile


def _login(s, hub: str, username: str, password: str):
    s.get(hub + "/hub/login", timeout=30)
    r = s.post(hub + "/hub/login", data={"username": username, "password": password,
                                        "_xsrf": s.cookies.get("_xsrf", path="/hub/")},
               allow_redirects=False, timeout=60)
    if r.status_code != 302:
        raise RuntimeError(f"login of {username} failed: HTTP {r.status_code}")
    s.headers["X-XSRFToken"] = s.cookies.get("_xsrf", path="/hub/") or ""


def login_to_ready(hub: str, username: str, password: str, deadline_s: float = 120) -> tuple[float, dict]:
    import requests

    s = requests.Session()
    s.trust_env = False
    t0 = time.perf_counter()
    _login(s, hub, username, password)
    t_login = time.perf_counter()
    r = s.post(f"{hub}/hub/api/users/{username}/server", timeout=120)
    if r.status_code not in (201, 202, 400):
        raise RuntimeError(f"spawn of {username}: HTTP {r.status_code} {r.text[:200]}")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        srv = s.get(f"{hub}/hub/api/users/{username}", timeout=30).json().get("servers", {}).get("")
        if srv and srv.get("ready"):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"{username}'s server not ready after {deadline_s} s")
    t_ready = time.perf_counter()
    lab = s.get(f"{hub}/user/{username}/lab", timeout=60)  # OAuth round trip to the server, then the page
    if lab.status_code != 200 or "jupyter" not in lab.text.lower():
        raise RuntimeError(f"{username}'s JupyterLab did not answer: HTTP {lab.status_code}")
    t_lab = time.perf_counter()
    s.delete(f"{hub}/hub/api/users/{username}/server", timeout=60)
    return t_lab - t0, {"login": t_login - t0, "spawn": t_ready - t_login, "lab": t_lab - t_ready}


def gateway_for(hub: str, username: str, password: str, proxy_address: str):
    """A Gateway acting as the user, with a hub token holding the gateway's access scope."""
    import requests
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    s = requests.Session()
    s.trust_env = False
    _login(s, hub, username, password)
    r = s.post(f"{hub}/hub/api/users/{username}/tokens", timeout=30,
               json={"note": "bench", "expires_in": 3600, "scopes": ["access:services!service=dask-gateway"]})
    r.raise_for_status()
    return Gateway(address=f"{hub}/services/dask-gateway", proxy_address=proxy_address,
                   auth=JupyterHubAuth(api_token=r.json()["token"]))


def bench_hub(args) -> int:
    import requests

    from kowalski.client import connect
    from kowalski.config import get_config

    from hub.settings import gateway_env, hub_url

    config = get_config()
    hub, api = hub_url(config), str(config["api"]["url"]).rstrip("/")
    admin_user, admin_pw = config["admin"]["username"], str(config["admin"]["password"])
    admin = connect(api, username=admin_user, password=admin_pw)
    users = []
    for i in range(max(args.logins, 1)):
        name, pw = f"bench-hub-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
        admin.request("POST", "/api/users", {"username": name, "password": pw})
        users.append((name, pw))
    try:
        requests.get(hub + "/hub/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        print(f"hub at {hub} not answering ({exc.__class__.__name__}): start it with `kowalski up hub`")
        return 1

    print(f"hub {hub}  api {api}")
    times, phases = [], []
    for name, pw in users[: args.logins]:
        total, phase = login_to_ready(hub, name, pw)
        times.append(total)
        phases.append(phase)
        print(f"  login -> ready server ({name}): {total:.2f} s (" +
              ", ".join(f"{k} {v:.2f} s" for k, v in phase.items()) + ")", flush=True)
    if times:
        print(f"login to ready user server: n={len(times)} p50={statistics.median(times):.2f} s "
              f"p95={percentile(times, 95):.2f} s max={max(times):.2f} s; median phases: " +
              ", ".join(f"{k} {statistics.median(p[k] for p in phases):.2f} s" for k in phases[0]))

    name, pw = users[0]
    gw = gateway_for(hub, name, pw, gateway_env(config)["DASK_GATEWAY__PROXY_ADDRESS"])
    rounds = []
    for _ in range(args.clusters):
        t0 = time.perf_counter()
        cluster = gw.new_cluster()
        t_cluster = time.perf_counter() - t0
        cluster.scale(2)
        client = cluster.get_client()
        client.wait_for_workers(2, timeout=120)
        rounds.append((t_cluster, time.perf_counter() - t0))
        print(f"  new_cluster() {t_cluster:.2f} s, 2 workers ready {rounds[-1][1]:.2f} s", flush=True)
        if args.backtest and len(rounds) == 1:
            _backtest(admin, client)
        client.close()
        cluster.shutdown()
        # collect the cluster's Gateway here: dask-gateway's Gateway.__del__ deadlocks when the garbage
        # collector happens to run it on the Dask event-loop thread (it waits on that same loop)
        del cluster, client
        gc.collect()
    if rounds:
        print(f"new_cluster() to 2 workers ready: n={len(rounds)} median={statistics.median(r[1] for r in rounds):.2f} s "
              f"max={max(r[1] for r in rounds):.2f} s (cluster object: median "
              f"{statistics.median(r[0] for r in rounds):.2f} s)")
    return 0


def _backtest(admin, client) -> None:
    """Every night of the archive: in the API process vs on the gateway cluster (same filter)."""
    filter_id, group_id = 990000 + int(time.time()) % 9999, 99999
    admin.request("PUT", f"/api/users/{_admin_name(admin)}/groups", {"groups": [group_id]})
    pipeline = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$project": {"_id": 0, "candid": 1}}]
    admin.save_filter(group_id, filter_id, pipeline, permissions=[1, 2, 3], active=False)
    try:
        days = admin.alert_days(2400000, 2500000)
        lo, hi = float(days.day.min()), float(days.day.max()) + 1
        t0 = time.perf_counter()
        _, s_api = admin.backtest(filter_id, lo, hi, alerts_per_slice=10**9)
        t_api = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, s_dask = admin.backtest(filter_id, lo, hi, dask=client, alerts_per_slice=max(50, int(days.alerts.sum()) // 8))
        t_dask = time.perf_counter() - t0
        print(f"backtest of {len(days)} nights ({s_api['alerts']} alerts, {s_api['passed']} pass): "
              f"in the API process, one /test per night: {t_api:.2f} s; "
              f"fanned out on the 2-worker gateway cluster ({s_dask['slices']} slices): {t_dask:.2f} s")
    finally:
        admin.request("DELETE", f"/api/filters/{filter_id}")


def _admin_name(admin) -> str:
    import jwt

    return jwt.decode(admin.token, options={"verify_signature": False})["user_id"]


def register(sub) -> None:
    bench = get_bench_subparsers(sub)
    p = bench.add_parser("hub", help="login-to-ready p95 and new_cluster()-to-2-workers on a running hub")
    p.add_argument("--logins", type=int, default=10, help="new users logged in one after the other")
    p.add_argument("--clusters", type=int, default=3, help="gateway clusters started one after the other")
    p.add_argument("--no-backtest", dest="backtest", action="store_false",
                   help="skip the backtest comparison (API process vs gateway cluster)")
    p.set_defaults(func=bench_hub)

