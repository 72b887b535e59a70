"""``kowalski bench dashboards``: page loads in a real browser (Debian's chromium driven by
Playwright), logged in through the hub: the alert browser from navigation to its first page of
results listed, the object page to its three cutouts and light curve drawn, and a backtest of one
night on the filter page from the click to its first counts (a filter made for it through the API,
deleted after); prints p50/p95.

    kowalski bench dashboards --hub-url http://127.0.0.1:8000 --object ZTF17aadcvhq -n 20
(user and password default to the Kowalski admin of the config)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from kowalski.bench import get_bench_subparsers
from kowalski.config import load_config

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# the elements with a CSS class, anywhere in Bokeh's shadow roots: how many, and their text
FIND = ("(cls) => { let n = 0, text = ''; const walk = e => { if (e.shadowRoot) walk(e.shadowRoot);"
        " for (const c of e.children || []) { if (c.classList && c.classList.contains(cls)) { n++;"
        " text += (c.shadowRoot ? c.shadowRoot.textContent : '') + c.textContent; } walk(c); } };"
        " walk(document.body); return {n, text}; }")
# the page's own clock (ms since its navigation started) once an element of each CSS class is
# drawn, else false. Polled inside the page (one walk of ~1-2 ms per poll), so the figure is the
# page's own and leaves out Playwright's round trips.
DRAWN = ("(classes) => { const want = new Set(classes); const walk = e => { if (e.shadowRoot) walk(e.shadowRoot);"
         " for (const c of e.children || []) { if (!want.size) return; for (const k of c.classList || []) want.delete(k);"
         " walk(c); } }; walk(document.body); return want.size ? false : performance.now(); }")
OBJECT_DRAWN = {"kw-cutout-img-science", "kw-cutout-img-template", "kw-cutout-img-difference", "kw-lightcurve"}


def add_arguments(p: argparse.ArgumentParser, config) -> None:
    p.add_argument("--hub-url", default=str(config["hub"]["url"]))
    p.add_argument("--username", default=str(config["admin"]["username"]))
    p.add_argument("--password", default=str(config["admin"]["password"]))
    p.add_argument("--survey", default="ztf")
    p.add_argument("--object", default="ZTF17aadcvhq")
    p.add_argument("-n", type=int, default=20, help="loads of each page (after one warm-up load)")
    p.add_argument("--night", default="2023-10-12", help="the night (UTC date) the filter page backtests")


def register(sub) -> None:
    p = get_bench_subparsers(sub).add_parser("dashboards", help="alert browser and object page load times in chromium")
    add_arguments(p, load_config())
    p.set_defaults(func=run)


def _found(page, cls: str) -> dict:
    return page.evaluate(FIND, cls)


def _until(page, ready, what: str, deadline_s: float = 60.0) -> None:
    """Poll ``ready`` every 20 ms; a page that never gets there stops the benchmark, saying which."""
    end = time.monotonic() + deadline_s
    while not ready():
        if time.monotonic() > end:
            raise SystemExit(f"kowalski bench dashboards: {what} not ready after {deadline_s:.0f} s ({page.url})")
        page.wait_for_timeout(20)


def _timed(page, url: str, classes, n: int, what: str) -> np.ndarray:
    """Seconds from navigation to an element of each of ``classes`` drawn, by the page's clock
    (the Python-side wall time, which adds Playwright's round trips, is printed alongside)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    times = []
    for i in range(n + 1):  # the first load warms the server's imports: not counted
        t0 = time.perf_counter()
        page.goto(url, timeout=120_000)
        try:
            drawn_ms = page.wait_for_function(DRAWN, arg=sorted(classes), polling=20, timeout=60_000).json_value()
        except PlaywrightTimeout:
            raise SystemExit(f"kowalski bench dashboards: {what} not drawn after 60 s ({page.url})") from None
        dt, wall = drawn_ms / 1000, time.perf_counter() - t0
        if i:
            times.append(dt)
        print(f"{what} load {i}: {dt:.2f} s (wall {wall:.2f} s){' (warm-up, not counted)' if not i else ''}", flush=True)
    return np.array(times)


def _report(what: str, t: np.ndarray, unit: str = "loads") -> None:
    print(f"{what} over {len(t)} {unit}: p50 {np.percentile(t, 50):.2f} s, p95 {np.percentile(t, 95):.2f} s, "
          f"max {t.max():.2f} s", flush=True)


BACKTEST_PIPELINE = [{"$match": {"candidate.drb": {"$gt": 0.5}}}, {"$match": {"candidate.magpsf": {"$lt": 19.5}}},
                     {"$project": {"_id": 0, "candid": 1, "objectId": 1}}]
def _backtests(page, base: str, a, n: int) -> np.ndarray:
    """The filter page opened afresh ``n`` times (after a warm-up), a backtest of one night asked
    each time: seconds from the click to the stage counts shown."""
    from astropy.time import Time

    from kowalski.client import connect

    client = connect(str(load_config()["api"]["url"]), username=a.username, password=a.password)
    filter_id = 900_000 + int(time.time()) % 100_000
    client.save_filter(1, filter_id, BACKTEST_PIPELINE, permissions=[1])
    start = Time(a.night).jd
    try:
        times = []
        for i in range(n + 1):
            page.goto(f"{base}/filters/{filter_id}", timeout=120_000)
            _until(page, lambda: page.locator("input[placeholder='2460230.5']").count(), "the filter page's form")
            page.wait_for_timeout(500)  # the page's own first load (the filter's versions) settles
            for sel, value in (("input[placeholder='2460229.5 or 2023-10-12']", start), ("input[placeholder='2460230.5']", start + 1)):
                page.locator(sel).first.fill(str(value))
                page.locator(sel).first.press("Tab")
            t0 = time.perf_counter()
            page.locator("button", has_text="Run backtest").first.click()
            _until(page, lambda: "Alerts remaining after each stage" in _found(page, "kw-stage-counts")["text"], "the backtest's counts")
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
            print(f"backtest of {a.night} {i}: {dt:.2f} s{' (warm-up, not counted)' if not i else ''}", flush=True)
        return np.array(times)
    finally:
        client.request("DELETE", f"/api/filters/{filter_id}")


def run(a) -> int:
    from playwright.sync_api import sync_playwright

    base = f"{a.hub_url.rstrip('/')}/services/dashboards"
    url = f"{base}/object?survey={a.survey}&id={a.object}"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        page = b.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url, timeout=120_000)
        page.fill("#username_input", a.username)
        page.fill("#password_input", a.password)
        page.click("#login_submit")
        page.wait_for_url("**/services/dashboards/object*", timeout=120_000)
        alerts = _timed(page, f"{base}/alerts", ["tabulator-row"], a.n, "alert browser")
        objects = _timed(page, url, OBJECT_DRAWN, a.n, "object page")
        backtests = _backtests(page, base, a, max(3, a.n // 4))
        b.close()
    _report("alert browser (first page of 100 alerts listed)", alerts)
    _report(f"object page ({a.object}: 3 cutouts + light curve)", objects)
    _report(f"backtest of the night {a.night} (click to the stage counts)", backtests, "runs")
    return 0
