"""The dashboards run as the hub's managed service: these tests use the hub stack of tests/hub
(a real API on the real ZTF alerts plus programid-2 copies, a real hub, the real Panel server)
and drive Debian's chromium with Playwright. Screenshots go to var/artifacts/dashboards/."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.hub.conftest import ROOT
from tests.hub.test_browser import launched_chromium

ARTIFACTS = ROOT / "var" / "artifacts" / "dashboards"
PREFIX = "/services/dashboards"


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as b:
        yield b


def wait_for(what: str, ready, deadline_s: float = 120, state=lambda: "", interval_s: float = 0.5):
    end = time.monotonic() + deadline_s
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what} (after {deadline_s:.0f} s); state: {state()}")
        time.sleep(interval_s)


# Bokeh renders into shadow roots, which innerText does not enter; their stylesheets are no text
TEXT = """() => { const out = []; const walk = n => { if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) { if (c.nodeType === 3) out.push(c.textContent);
        else if ((c.nodeType === 1 && c.tagName !== 'STYLE' && c.tagName !== 'SCRIPT') || c.nodeType === 11) walk(c); } };
    walk(document.body); return out.join(' ').replace(/\\s+/g, ' '); }"""


def page_text(page) -> str:
    try:
        return page.evaluate(TEXT)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"<no text: {exc}>"


def open_logged_in(browser, stack, path: str, user: tuple[str, str]):
    """A new browser context: open a dashboards page, log in at the hub's form, land on the page."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = ctx.new_page()
    page.goto(stack.url + PREFIX + path, timeout=120_000)
    wait_for("hub login form", lambda: page.locator("#username_input").count(), 120, lambda: page.url)
    page.fill("#username_input", user[0])
    page.fill("#password_input", user[1])
    page.click("#login_submit")
    wait_for("back on the dashboards page after login", lambda: PREFIX in page.url and "oauth" not in page.url, 120,
             lambda: page.url)
    return ctx, page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
