"""The object page's tools on the real stack: the three stamps' FITS and the alert's raw JSON
download from the page (the files are the API's), and a classification label set and removed on
the page is what the API's ``/api/classifications`` then answers."""

from __future__ import annotations

import json

import numpy as np

from kowalski.cutouts import read_fits
from tests.dashboards.conftest import open_logged_in, page_text, shot, wait_for
from tests.dashboards.test_pages import OBJECT, cutouts_ready


def download(page, css: str) -> bytes:
    with page.expect_download(timeout=120_000) as d:
        page.locator(f".{css} button").first.click()
    return open(d.value.path(), "rb").read()


def latest_candid(stack, token) -> int:
    r = stack.api.post("/api/queries", {"query_type": "find", "query": {
        "catalog": "ZTF_alerts", "filter": {"objectId": OBJECT}, "projection": {"_id": 0, "candid": 1, "candidate.jd": 1}}},
        token=token)
    assert r.status_code == 200, r.text
    return max(r.json()["data"], key=lambda a: a["candidate"]["jd"])["candid"]


def test_fits_and_json_downloads_are_the_apis(hub_stack, chromium):
    user = hub_stack.new_user()
    token = hub_stack.api.token(*user)
    candid = latest_candid(hub_stack, token)
    ctx, page = open_logged_in(chromium, hub_stack, f"/object/ztf/{OBJECT}", user)
    try:
        wait_for("three cutouts drawn", lambda: cutouts_ready(page), 180, lambda: page_text(page)[:1500])
        for which in ("science", "template", "difference"):
            got = download(page, f"kw-download-{which}")
            r = hub_stack.api.get(f"/api/cutouts/ztf/{candid}/{which}/fits", token=token)
            assert r.status_code == 200 and got == r.content, (which, len(got), r.status_code)
            image, _ = read_fits(got)
            assert image.shape == (63, 63) and np.isfinite(image).any(), image.shape
        doc = json.loads(download(page, "kw-download-json"))
        assert doc["candid"] == candid and doc["objectId"] == OBJECT, {k: doc.get(k) for k in ("candid", "objectId")}
        assert "cutoutScience" in doc and "candidate" in doc, sorted(doc)
        shot(page, "object-page-downloads")
    finally:
        ctx.close()


def test_labels_set_on_the_page_are_the_apis(hub_stack, chromium):
    user = hub_stack.new_user()
    token = hub_stack.api.token(*user)
    candid = latest_candid(hub_stack, token)
    label = f"SN Ia {user[0][-4:]}"
    ctx, page = open_logged_in(chromium, hub_stack, f"/object/ztf/{OBJECT}", user)

    def labels():
        r = hub_stack.api.get(f"/api/classifications/ztf/{candid}", token=token)
        return r.json().get("data", {}).get("human_labels", {}) if r.status_code == 200 else {}
    try:
        wait_for("the labels form", lambda: page.locator(".kw-label-name input").count(), 180, lambda: page_text(page)[:1500])
        page.locator(".kw-label-name input").first.fill(label)
        page.locator(".kw-label-name input").first.press("Tab")

        def added():
            page.locator(".kw-label-add button").first.click()  # a lost click is repeated
            page.wait_for_timeout(1500)
            return label in labels() and label in page_text(page)
        wait_for(f"label {label!r} stored and shown", added, 120, lambda: f"{labels()} {page_text(page)[:1500]}", 0)
        assert labels()[label] == 1.0
        shot(page, "object-page-label")

        # bad input: a label the API would refuse is refused on the page, nothing stored
        page.locator(".kw-label-name input").first.fill("$bad.label")
        page.locator(".kw-label-name input").first.press("Tab")

        def refused():
            page.locator(".kw-label-add button").first.click()
            page.wait_for_timeout(1000)
            return "without '.'" in page_text(page)
        wait_for("the bad label refused inline", refused, 60, lambda: page_text(page)[:1500], 0)
        assert "$bad.label" not in labels()

        def removed():
            page.locator(".kw-labels label", has_text=label).locator("input").first.check()
            page.locator(".kw-label-remove button").first.click()
            page.wait_for_timeout(1500)
            return label not in labels()
        wait_for(f"label {label!r} removed", removed, 120, lambda: f"{labels()} {page_text(page)[:1500]}", 0)
    finally:
        hub_stack.api.delete("/api/classifications/ztf", {str(candid): {"human_labels": [label]}}, token=token)
        ctx.close()
