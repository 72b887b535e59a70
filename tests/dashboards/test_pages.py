"""The dashboards on the real stack: hub login required, the object page of a real alert in a real
browser (three non-blank cutouts, a light curve with points, the stretch changes the image), data
rights (a public-only user never sees a programid-2 alert), bad input as a message."""

from __future__ import annotations

import io

import numpy as np
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.api.realdata import PRIVATE_CANDID_OFFSET, PRIVATE_OF
from tests.dashboards.conftest import PREFIX, open_logged_in, page_text, shot, wait_for

OBJECT = "ZTF17aadcvhq"                                   # real alert, also copied as programid 2
PRIVATE = str(PRIVATE_OF[2] % 10**17 + PRIVATE_CANDID_OFFSET)  # that copy's candid
PUBLIC = str(PRIVATE_OF[2])


def pixels(locator) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("L"), dtype=float)


def cutouts_ready(page):
    loc = [page.locator(f".kw-cutout-{w} img").first for w in ("science", "template", "difference")]
    return loc if all(c.count() for c in loc) else None


def test_no_hub_login_gets_the_hub_login_page(hub_stack):
    s = requests.Session()
    s.trust_env = False
    r = s.get(hub_stack.url + PREFIX + f"/object/ztf/{OBJECT}", timeout=60)
    assert r.status_code == 200 and "/hub/login" in r.url, (r.status_code, r.url)
    assert 'name="password"' in r.text or "password_input" in r.text, r.text[:500]
    assert "bokeh" not in r.text.lower()


def test_status_reports_the_dashboards(hub_stack):
    r = hub_stack.kowalski("status", "dashboards", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"healthy": true' in r.stdout and PREFIX in r.stdout, r.stdout


def test_object_page_cutouts_light_curve_and_stretch(hub_stack, chromium):
    user = hub_stack.new_user({"ztf": [1, 2]})
    ctx, page = open_logged_in(chromium, hub_stack, f"/object/ztf/{OBJECT}", user)
    try:
        cut = wait_for("three cutouts drawn", lambda: cutouts_ready(page), 180, lambda: page_text(page)[:1500])
        wait_for("light curve drawn", lambda: page.locator(".kw-lightcurve canvas").count(), 120,
                 lambda: page_text(page)[:1500])
        try:  # let the page settle before the screenshot; a busy machine may never be idle for long
            page.wait_for_load_state("networkidle", timeout=60_000)
        except PlaywrightTimeout:
            pass
        path = shot(page, "object-page")
        for which, c in zip(("science", "template", "difference"), cut):
            px = pixels(c)
            assert px.std() > 5, f"{which} cutout looks blank (pixel std {px.std():.2f}); see {path}"
        text = page_text(page)
        assert OBJECT in text and "detection" in text, text[:2000]
        assert PRIVATE in text and PUBLIC in text, f"a user with programid 2 sees both alerts: {text[:3000]}"

        before = pixels(cut[0])
        def changed():
            page.locator(".kw-stretch button", has_text="linear").first.click()  # a lost click is repeated
            page.wait_for_timeout(1500)
            now = cutouts_ready(page)
            return now is not None and np.abs(pixels(now[0]) - before).mean() > 2
        wait_for("the science cutout changed with the stretch", changed, 120, lambda: page_text(page)[:500], 0)
        shot(page, "object-page-linear")
    finally:
        ctx.close()


def test_public_user_never_sees_a_programid_2_alert(hub_stack, chromium):
    user = hub_stack.new_user()
    ctx, page = open_logged_in(chromium, hub_stack, f"/object/ztf/{OBJECT}", user)
    try:
        wait_for("the object's alerts table", lambda: PUBLIC in page_text(page), 180, lambda: page_text(page)[:1500])
        text = page_text(page)
        shot(page, "object-page-public-user")
        assert PRIVATE not in text, "a public-only user sees the programid-2 alert"
        assert "1 alert(s)" in text, text[:1500]
        page.goto(hub_stack.url + PREFIX + "/alerts", timeout=120_000)
        wait_for("the alert browser's results", lambda: "alerts 1–" in page_text(page), 180, lambda: page_text(page)[:1500])
        text = page_text(page)
        shot(page, "alerts-public-user")
        assert f"of {hub_stack.archive['n_public']}" in text, text[:1500]
        assert not any(str(c) in text for c in hub_stack.archive["private_candids"]), text[:3000]
    finally:
        ctx.close()


def test_bad_input_is_a_message_not_a_traceback(hub_stack, chromium):
    ctx, page = open_logged_in(chromium, hub_stack, "/object/ztf/ZTF99zzzzzzz", hub_stack.new_user())
    try:
        wait_for("unknown object message", lambda: "No ZTF alert of ZTF99zzzzzzz" in page_text(page), 180,
                 lambda: page_text(page)[:1500])
        page.goto(hub_stack.url + PREFIX + "/alerts", timeout=120_000)
        wait_for("the alert browser", lambda: "alerts 1–" in page_text(page), 180, lambda: page_text(page)[:1500])
        page.locator("input[placeholder^='71.6578']").first.fill("12h61m -95")

        def says():
            page.locator("button", has_text="Search").first.click()
            page.wait_for_timeout(1000)
            return "is not readable as RA Dec" in page_text(page) or "off the sky" in page_text(page)
        wait_for("malformed cone message", says, 120, lambda: page_text(page)[:1500], 0)
        shot(page, "alerts-bad-cone")
        assert "Traceback" not in page_text(page)
    finally:
        ctx.close()
