"""What `images/compose.sh test` asserts on the running stack, from the host: the real alerts
produced into Kafka are stored, exactly once each, and queryable through the API (penquins, via the
load balancer), and the hub logs the admin in and starts a JupyterLab server. Prints what it saw
and how long each part took; exits 1 with the reason otherwise."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# survey catalog -> the shared real night produced by compose.sh (folder under alerts/kowalski)
NIGHTS = {"ZTF_alerts": "ztf_alerts/20231012", "PGIR_alerts": "pgir_alerts/20210629",
          "WNTR_alerts": "wntr_alerts/20240311"}


def expected(data: Path) -> dict[str, int]:
    """Alerts per catalog: the number of alert files of each night (one alert per file)."""
    return {cat: sum(1 for p in (data / night).iterdir() if p.suffix == ".avro") for cat, night in NIGHTS.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--hub", required=True)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--password", required=True)
    ap.add_argument("--deadline", type=float, default=300, help="seconds to wait for the alerts")
    a = ap.parse_args()
    from penquins import Kowalski

    from hub.bench import login_to_ready

    want = expected(a.data)
    u = urlsplit(a.api)
    t0 = time.monotonic()
    k = Kowalski(username="admin", password=a.password, protocol="http", host=u.hostname, port=u.port, timeout=60)
    counts: dict[str, int] = {}
    while time.monotonic() - t0 < a.deadline:
        for cat in want:
            r = k.query({"query_type": "count_documents", "query": {"catalog": cat, "filter": {}}})
            counts[cat] = int(r["default"]["data"]) if r["default"].get("status") == "success" else -1
        if counts == want:
            break
        time.sleep(2)
    print(f"alerts stored (API count): {counts}; expected from the files: {want} "
          f"({time.monotonic() - t0:.1f} s after producing)")
    if counts != want:
        print("error: the stored alerts do not match the produced ones", file=sys.stderr)
        return 1
    cat = "ZTF_alerts"
    r = k.query({"query_type": "find", "query": {"catalog": cat, "filter": {},
                                                 "projection": {"_id": 0, "candid": 1, "objectId": 1}}})
    docs = r["default"]["data"]
    if len({d["candid"] for d in docs}) != want[cat]:
        print(f"error: {cat}: {len(docs)} documents, {len({d['candid'] for d in docs})} distinct candids",
              file=sys.stderr)
        return 1
    one = docs[0]["objectId"]
    r = k.query({"query_type": "find", "query": {"catalog": f"{cat}_aux", "filter": {"_id": one},
                                                 "projection": {"_id": 1, "prv_candidates": 1}}})
    aux = r["default"]["data"]
    if len(aux) != 1:
        print(f"error: no aux document for {one}", file=sys.stderr)
        return 1
    print(f"{cat}: {len(docs)} distinct candids; {one}'s aux holds {len(aux[0].get('prv_candidates') or [])} "
          f"previous detections")
    hub = a.hub.rstrip("/")
    total, parts = login_to_ready(hub, "admin", a.password, deadline_s=180)
    print(f"hub: admin logged in and JupyterLab served in {total:.1f} s "
          + ", ".join(f"{n} {v:.1f} s" for n, v in parts.items()))
    return dashboards(hub, a.password, docs[0]["objectId"])


def dashboards(hub: str, password: str, object_id: str) -> int:
    """The dashboards container, reached through the hub's proxy: a logged-in user gets through the
    hub's OAuth to the object page's document (the page's data then comes over its websocket)."""
    import requests

    from hub.bench import _login

    s = requests.Session()
    s.trust_env = False
    _login(s, hub, "admin", password)
    t0 = time.monotonic()
    r = s.get(f"{hub}/services/dashboards/object?survey=ztf&id={object_id}", timeout=120)
    if r.status_code != 200 or "bokeh" not in r.text.lower():
        print(f"error: dashboards object page: HTTP {r.status_code} at {r.url}: {r.text[:300]}", file=sys.stderr)
        return 1
    anonymous = requests.get(f"{hub}/services/dashboards/object", timeout=60, allow_redirects=False)
    if anonymous.status_code not in (302, 303) or "oauth2/authorize" not in anonymous.headers.get("Location", ""):
        print(f"error: the dashboards served a page without a login: HTTP {anonymous.status_code}", file=sys.stderr)
        return 1
    print(f"dashboards: object page through the hub's login in {time.monotonic() - t0:.1f} s; "
          f"without a login: HTTP {anonymous.status_code} to the hub's OAuth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
