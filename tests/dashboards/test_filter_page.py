"""The filter editor on the real stack: a group member's filter (created through the API) opens by
its deep link, its backtest over the 20231012 night shows the same pass count and the same alerts
remaining after each stage as the API's ``/test`` for that range, with links to the object pages;
an invalid pipeline gets the API's validation message under the editor."""

from __future__ import annotations

import re
import time
import uuid

from tests.dashboards.conftest import PREFIX, open_logged_in, page_text, shot, wait_for
from tests.filters.test_api_stage_counts import DAY, PIPELINE

COUNTS = re.compile(r"Alerts remaining after each stage: ([\d →]+) \(of (\d+)\)")
PASSED = re.compile(r"(\d+) of (\d+) alerts passed")


def member_with_filter(stack) -> tuple[tuple[str, str], int, str]:
    """A new user in a group of their own, with a filter of PIPELINE saved through the API as them."""
    user = stack.new_user({"ztf": [1, 2]})
    group = 100 + uuid.uuid4().int % 10**6
    api = stack.api
    r = api.put(f"/api/users/{user[0]}/groups", {"groups": [group]}, token=api.admin_token)
    assert r.status_code == 200, r.text
    filter_id = group  # filter ids are global: unique with the group
    r = api.post("/api/filters", {"group_id": group, "filter_id": filter_id, "catalog": "ZTF_alerts",
                                  "permissions": [1, 2], "pipeline": PIPELINE, "active": False},
                 token=api.token(*user))
    assert r.status_code == 200, r.text
    return user, filter_id, r.json()["data"]["fid"]


def fill(page, selector: str, value: str) -> None:
    box = page.locator(selector).first
    box.fill(value)
    box.press("Tab")  # Bokeh takes a text input's value when it changes (blur)


def test_backtest_counts_equal_the_apis(hub_stack, chromium):
    user, filter_id, fid = member_with_filter(hub_stack)
    ctx, page = open_logged_in(chromium, hub_stack, f"/filters/{filter_id}", user)
    try:
        wait_for(f"filter #{filter_id} opened with version {fid}",
                 lambda: fid in page_text(page) and f"#{filter_id}" in page_text(page), 180,
                 lambda: page.url + " " + page_text(page)[:1500])
        fill(page, "input[placeholder='2460229.5 or 2023-10-12']", str(DAY["start_date"]))
        fill(page, "input[placeholder='2460230.5']", str(DAY["end_date"]))

        def counted(marker=""):
            page.locator("button", has_text="Run backtest").first.click()  # a lost click is repeated,
            end = time.monotonic() + 20                                     # a slow backtest is not
            while time.monotonic() < end:
                text = page_text(page)
                found = COUNTS.search(text)
                if found and PASSED.search(text) and marker in text:  # two panes: wait for both
                    return found
                page.wait_for_timeout(500)
            return None
        t0 = time.monotonic()
        m = wait_for("the backtest's stage counts", counted, 240, lambda: page_text(page)[:3000], 0)
        print(f"backtest of the night: counts on the page {time.monotonic() - t0:.2f} s after the first click")
        shot(page, "filter-backtest")
        text = page_text(page)
        shown = [int(n) for n in m.group(1).replace("→", " ").split()]
        passed = PASSED.search(text)
        assert passed, text[:3000]

        api = hub_stack.api
        r = api.post(f"/api/filters/{filter_id}/test", DAY, token=api.token(*user))
        assert r.status_code == 200, r.text
        s = r.json()["summary"]
        assert shown == s["stage_counts"], f"page {shown} != API {s['stage_counts']}; page: {text[:2000]}"
        assert (int(passed.group(1)), int(passed.group(2))) == (s["passed"], s["alerts"]), (passed.group(0), s)
        assert int(m.group(2)) == s["alerts"] and len(shown) == len(PIPELINE) and s["passed"] > 0, s
        links = page.locator(".kw-passing a[href*='/object/ztf/']")
        wait_for("links from the passing alerts to their object pages", lambda: links.count() > 0, 60,
                 lambda: page_text(page)[-2000:])
        href = links.first.get_attribute("href")
        oids = {o["objectId"] for o in r.json()["data"]}
        assert href.rsplit("/", 1)[1] in oids, (href, oids)
        assert "Traceback" not in text

        # past a day: one /test per slice of the days holding alerts (here the night alone), the same counts
        fill(page, "input[placeholder='2460229.5 or 2023-10-12']", "2460228.5")
        fill(page, "input[placeholder='2460230.5']", "2460231.5")
        m = wait_for("the three-day backtest's stage counts", lambda: counted("/test calls)"), 240,
                     lambda: page_text(page)[:3000], 0)
        wait_for("links from the three-day backtest's passing alerts", lambda: links.count() == min(20, len(r.json()["data"])), 60,
                 lambda: f"{links.count()} links; page: {page_text(page)[-2000:]}")
        shot(page, "filter-backtest-three-days")
        shown = [int(n) for n in m.group(1).replace("→", " ").split()]
        assert shown == s["stage_counts"], f"three days {shown} != the night's /test {s['stage_counts']}"

        # activation: the flood guard's verdict (on the archive's most recent alerts) is shown as the API gives it
        refused, accepted = "activation refused by the flood guard", f"is now active with version {fid}"

        def verdict():
            page.locator("button", has_text="Activate this version").first.click()
            page.wait_for_timeout(2000)
            t = page_text(page)
            return "refused" if refused in t else "accepted" if accepted in t else None
        said = wait_for("the flood guard's verdict", verdict, 120, lambda: page_text(page)[:3000], 0)
        shot(page, f"filter-activation-{said}")
        active = api.get(f"/api/filters/{filter_id}", token=api.token(*user)).json()["data"]["active"]
        assert active == (said == "accepted"), (said, active)
    finally:
        ctx.close()


def test_an_invalid_pipeline_gets_the_apis_message_inline(hub_stack, chromium):
    user, filter_id, fid = member_with_filter(hub_stack)
    ctx, page = open_logged_in(chromium, hub_stack, f"/filters?id={filter_id}", user)
    try:
        wait_for(f"filter #{filter_id} opened", lambda: fid in page_text(page), 180, lambda: page_text(page)[:1500])
        editor = page.locator(".kw-pipeline textarea").first
        for bad, says in (('[{"$matc": {"candidate.drb": {"$gt": 0.5}}}]', "unsupported stage $matc in stage 1"),
                          ('[{"$match": ', "pipeline is not valid JSON")):
            editor.fill(bad)
            editor.press("Tab")

            def said():
                page.locator("button", has_text="Save as new version").first.click()
                page.wait_for_timeout(1500)
                return says in page_text(page)
            wait_for(f"the API's message {says!r} under the editor", said, 120, lambda: page_text(page)[:2500], 0)
        shot(page, "filter-invalid-pipeline")
        text = page_text(page)
        assert "Traceback" not in text and "HTTP 400" not in text, text[:2500]
        r = hub_stack.api.get(f"/api/filters/{filter_id}", token=hub_stack.api.token(*user))
        assert [v["fid"] for v in r.json()["data"]["fv"]] == [fid], "an invalid version was saved"
        assert PREFIX in page.url
    finally:
        ctx.close()
