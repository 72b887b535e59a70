"""The alert browser on the real stack: "passed filter F" lists exactly the alerts the API's
``/test`` passes for the range, and live mode shows an alert the broker's store path writes while
the page is open (then the alert is removed again: the stack is shared)."""

from __future__ import annotations

import io
import random
import re

import fastavro

from kowalski import db as kdb
from tests.conftest import shared_data
from tests.dashboards.conftest import open_logged_in, page_text, shot, wait_for
from tests.dashboards.test_filter_page import fill, member_with_filter
from tests.filters.test_api_stage_counts import DAY

SHOWN = re.compile(r"alerts (\d+)–(\d+) of (\d+)")


def results_ready(page):
    return SHOWN.search(page_text(page))


def test_passed_filter_lists_the_apis_passing_alerts(hub_stack, chromium):
    user, filter_id, fid = member_with_filter(hub_stack)
    ctx, page = open_logged_in(chromium, hub_stack, "/alerts", user)
    try:
        wait_for("the alert browser's results", lambda: results_ready(page), 180, lambda: page_text(page)[:1500])
        page.locator("select").filter(has=page.locator(f"option:has-text('#{filter_id}')")).first.select_option(
            label=f"#{filter_id} ZTF_alerts")
        fill(page, "input[placeholder='2023-10-12']", str(DAY["start_date"]))
        fill(page, "input[placeholder='2460231.5']", str(DAY["end_date"]))

        def searched():
            page.locator("button", has_text="Search").first.click()  # a lost click is repeated
            page.wait_for_timeout(2000)
            return "alerts in the range" in page_text(page) and results_ready(page)
        m = wait_for("the passed-filter search", searched, 180, lambda: page_text(page)[:2000], 0)
        shot(page, "alerts-passed-filter")
        r = hub_stack.api.post(f"/api/filters/{filter_id}/test", DAY, token=hub_stack.api.token(*user))
        assert r.status_code == 200, r.text
        passing = {str(o["candid"]) for o in r.json()["data"]}
        assert passing and int(m.group(3)) == len(passing) == r.json()["summary"]["passed"], (m.group(0), len(passing))
        text = page_text(page)
        assert f"passed {len(passing)} of {r.json()['summary']['alerts']} alerts in the range" in text, text[:2000]
        shown = set(re.findall(r"\b\d{18,19}\b", text))
        assert shown and shown <= passing, shown - passing  # every listed alert passed the filter

        # bad input: the filter without a range or object says what it needs
        fill(page, "input[placeholder='2023-10-12']", "")
        fill(page, "input[placeholder='2460231.5']", "")

        def needs_a_range():
            page.locator("button", has_text="Search").first.click()
            page.wait_for_timeout(1000)
            return "give a range (JD or date) or object ids" in page_text(page)
        wait_for("the passed-filter search without a range", needs_a_range, 60, lambda: page_text(page)[:1500], 0)
    finally:
        ctx.close()


def renamed_copy(data: bytes, candid: int, object_id: str) -> bytes:
    """A real alert packet as a new alert of a new object (new candid and object id, same content)."""
    reader = fastavro.reader(io.BytesIO(data))
    recs = [{**r, "candid": candid, "objectId": object_id, "candidate": {**r["candidate"], "candid": candid}}
            for r in reader]
    buf = io.BytesIO()
    fastavro.writer(buf, reader.writer_schema, recs, codec=reader.codec)
    return buf.getvalue()


def test_live_mode_shows_an_alert_as_it_is_stored(hub_stack, chromium):
    from broker.pipeline import process_messages, store_batch

    ctx, page = open_logged_in(chromium, hub_stack, "/alerts", hub_stack.new_user())
    suffix = "".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=7))
    object_id, candid = f"ZTF26{suffix}", 900_000_000_000_000_000 + random.randrange(10**15)
    config = hub_stack.config
    try:
        before = int(wait_for("the alert browser's results", lambda: results_ready(page), 180,
                              lambda: page_text(page)[:1500]).group(3))
        page.locator(".kw-live button").first.click()
        wait_for("live mode on", lambda: "live: +0 since it was turned on" in page_text(page), 120,
                 lambda: page_text(page)[:1500])
        packet = next(shared_data("alerts/kowalski/ztf_alerts/20231012").glob("*.avro")).read_bytes()
        result = process_messages("ztf", [renamed_copy(packet, candid, object_id)], config)
        assert not result.failed, result.failed
        store_batch(config, "ztf", result)
        wait_for("the new alert on the live page", lambda: object_id in page_text(page), 120,
                 lambda: page_text(page)[:1500])
        text = page_text(page)
        shot(page, "alerts-live")
        assert f"of {before + 1}" in text and "live: +1 since it was turned on" in text, text[:1500]
    finally:
        ctx.close()
        kdb.get_db(config)[kdb.alerts_collection(config, "ztf")].delete_one({"candid": candid})
        kdb.get_db(config)[kdb.aux_collection(config, "ztf")].delete_one({"_id": object_id})
