"""``python -m dashboards.bench``: object page load in a real browser (Debian's chromium driven by
Playwright), from navigation to three cutouts and the light curve drawn; prints p50/p95.

    python -m dashboards.bench --hub-url http://127.0.0.1:8000 --object ZTF17aadcvhq -n 20
(user and password default to the Kowalski admin of the config)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from kowalski.config import load_config

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DRAWN = ("() => { const found = []; const walk = n => { if (n.shadowRoot) walk(n.shadowRoot);"
         " for (const c of n.children || []) { if (c.classList && [...c.classList].some(k => k.startsWith('kw-')))"
         " found.push(...c.classList); walk(c); } }; walk(document.body); return found; }")
NEEDED = {"kw-cutout-science", "kw-cutout-template", "kw-cutout-difference", "kw-lightcurve"}


def main(argv=None) -> int:
    config = load_config()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hub-url", default=str(config["hub"]["url"]))
    p.add_argument("--username", default=str(config["admin"]["username"]))
    p.add_argument("--password", default=str(config["admin"]["password"]))
    p.add_argument("--survey", default="ztf")
    p.add_argument("--object", default="ZTF17aadcvhq")
    p.add_argument("-n", type=int, default=20)
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    url = f"{a.hub_url.rstrip('/')}/services/dashboards/object?survey={a.survey}&id={a.object}"
    times = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        page = b.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url, timeout=120_000)
        page.fill("#username_input", a.username)
        page.fill("#password_input", a.password)
        page.click("#login_submit")
        page.wait_for_url("**/services/dashboards/object*", timeout=120_000)
        for i in range(a.n + 1):  # the first load warms the server's imports: not counted
            t0 = time.perf_counter()
            page.goto(url, timeout=120_000)
            while not NEEDED <= set(page.evaluate(DRAWN)):
                page.wait_for_timeout(20)
            page.wait_for_function("() => true")
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
            print(f"load {i}: {dt:.2f} s{' (warm-up, not counted)' if not i else ''}", flush=True)
        b.close()
    t = np.array(times)
    print(f"object page ({a.object}: 3 cutouts + light curve) over {len(t)} loads: "
          f"p50 {np.percentile(t, 50):.2f} s, p95 {np.percentile(t, 95):.2f} s, max {t.max():.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
