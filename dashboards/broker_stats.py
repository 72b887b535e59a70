"""The broker monitor's figures, from the broker's ``/stats`` JSON (``broker/consumer.py``
``serve_http``, at ``broker.metrics.host:port`` of the config), read over HTTP: the dashboards
import no broker code. The address comes from the config, never from a user, and the figures are
counters and timings, not archive data (which the dashboards read only through the API).

``/stats`` gives, per survey, cumulative counters (messages, stored, duplicates, failed) and the
mean ms per alert of each stage; alerts/s are the messages counted between two reads."""

from __future__ import annotations

import math
import time

import pandas as pd
import requests

LATENCY_OVER = 1000  # /stats?last=N: latency percentiles over the last N alerts


class BrokerDown(Exception):
    """No broker answers at the metrics address (the message says so for the page)."""


def stats_url(config) -> str:
    m = config["broker"]["metrics"]
    return f"http://{m['host']}:{int(m['port'])}/stats"


def read_stats(url: str, timeout: float = 2.0) -> dict:
    s = requests.Session()
    s.trust_env = False  # a local address: never through a proxy
    try:
        r = s.get(url, params={"last": LATENCY_OVER}, timeout=timeout)
    except requests.RequestException as exc:
        raise BrokerDown(f"Broker not running: nothing answers at {url} ({exc.__class__.__name__}). "
                         f"Start it with `kowalski up broker`; this page keeps trying.") from None
    finally:
        s.close()
    if r.status_code != 200:
        raise BrokerDown(f"The broker's metrics server at {url} answered HTTP {r.status_code}.")
    try:
        data = r.json()
    except ValueError:
        raise BrokerDown(f"What answers at {url} is not the broker's metrics server (no JSON).") from None
    if not isinstance(data, dict) or "surveys" not in data:
        raise BrokerDown(f"What answers at {url} is not the broker's metrics server (no survey figures).")
    return data


class Rates:
    """Alerts/s per survey from the messages counted between two snapshots (before a second
    snapshot: the mean since the broker started)."""

    def __init__(self):
        self.last: tuple[float, dict] | None = None

    def update(self, snap: dict, now: float | None = None) -> dict[str, float]:
        now = time.monotonic() if now is None else now
        counts = {s: int(v.get("messages", 0)) for s, v in (snap.get("surveys") or {}).items()}
        prev, self.last = self.last, (now, counts)
        if prev is not None and now > prev[0] and all(counts.get(s, 0) >= n for s, n in prev[1].items()):
            return {s: (n - prev[1].get(s, 0)) / (now - prev[0]) for s, n in counts.items()}
        up = float(snap.get("uptime_s") or 0)
        return {s: (n / up if up > 0 else 0.0) for s, n in counts.items()}


def headline(snap: dict) -> str:
    lat = snap.get("latency_s") or {}
    p50, p95 = lat.get("p50"), lat.get("p95")
    latency = (f"{p50:.2f} s / {p95:.2f} s (p50 / p95 over the last {lat.get('n', 0)} alerts)"
               if all(isinstance(x, (int, float)) and math.isfinite(x) for x in (p50, p95)) else "no alert stored yet")
    stored = sum(int(v.get("stored", 0)) for v in (snap.get("surveys") or {}).values())
    return (f"**Broker {snap.get('state', '?')}** · up {float(snap.get('uptime_s') or 0):.0f} s · "
            f"{stored} alerts stored · "
            f"dead letters {snap.get('dead_letters', 0)} · database outages {snap.get('db_outages', 0)} · "
            f"Kafka to stored: {latency}")


def surveys_frame(snap: dict, rates: dict[str, float]) -> pd.DataFrame:
    rows = []
    for name, s in (snap.get("surveys") or {}).items():
        lag = s.get("lag", s.get("kafka_lag"))
        rows.append({"survey": name, "alerts/s": round(rates.get(name, 0.0), 2), "messages": s.get("messages", 0),
                     "stored": s.get("stored", 0), "duplicates": s.get("duplicates", 0), "failed": s.get("failed", 0),
                     "Kafka lag": "not reported" if lag is None else lag})
    return pd.DataFrame(rows, columns=["survey", "alerts/s", "messages", "stored", "duplicates", "failed",
                                       "Kafka lag"])


def stages_frame(snap: dict) -> pd.DataFrame:
    """ms per alert of each stage (rows) per survey (columns)."""
    cols = {name: s.get("ms_per_alert") or {} for name, s in (snap.get("surveys") or {}).items()}
    df = pd.DataFrame(cols)
    if df.empty:
        return pd.DataFrame(columns=["stage"])
    return df.rename_axis("stage").reset_index()
