"""What every page needs: the session's user and API client, the page header, and turning
failures into a message for the user (never a traceback)."""

from __future__ import annotations

import functools
import html
import logging
import re

import panel as pn
import requests

from dashboards.auth import NotLoggedIn, session_user
from kowalski.client import Kowalski, KowalskiError
from kowalski.config import load_config
from kowalski.surveys import get_survey

log = logging.getLogger("kowalski.dashboards")
PAGES = (("alerts", "Alerts"), ("object", "Object"), ("filters", "Filters"), ("monitor", "Broker"))
REFUSAL = re.compile(r"^HTTP 4\d\d on [A-Z]+ \S+: ")


@functools.cache
def server_config():
    """The Kowalski config, read once per Panel server (35 ms a read: it was read for every page load)."""
    return load_config()


class PageSession:
    """The logged-in user of a Panel session and a client acting with the user's Kowalski token."""

    def __init__(self):
        self.config = server_config()
        self.dash = self.config["hub"]["dashboards"]
        req = pn.state.curdoc.session_context.request
        self.user, token = session_user(req.cookies)
        self.client = Kowalski(str(self.config["api"]["url"]), token, timeout=float(self.dash["request_timeout_s"]))

    def surveys(self) -> list[str]:
        return list(self.config["surveys"])

    def catalog(self, survey: str) -> str:
        return get_survey(survey, self.config).alerts_collection

    def object_field(self, survey: str) -> str:
        return get_survey(survey, self.config).object_id


def explain(exc: Exception) -> str:
    """A message for the page: what went wrong and what the user can do."""
    text = str(exc)
    if isinstance(exc, NotLoggedIn):
        return f"{text}."
    if isinstance(exc, KowalskiError):
        if "token is invalid" in text or "HTTP 401" in text:
            return ("The Kowalski API no longer accepts your session's token (it was revoked or expired): "
                    "log out of the hub and log in again.")
        if "unreachable" in text:
            return "The Kowalski API is not answering right now; try again in a moment."
        return text
    if isinstance(exc, requests.RequestException):
        return "The hub did not answer; try again in a moment."
    log.exception("dashboards: unexpected error")
    return f"Something went wrong ({exc.__class__.__name__}); try again, and tell the operator if it persists."


def api_message(exc: Exception) -> str:
    """What the API said when it refused a request (its validation's message, without the HTTP
    status and route), else ``explain``."""
    text = str(exc)
    if isinstance(exc, KowalskiError) and REFUSAL.match(text) and not text.startswith("HTTP 401"):
        return REFUSAL.sub("", text, count=1)
    return explain(exc)


def object_link(survey: str, object_id: str, base: str | None = None) -> str:
    """An HTML link to the object page of ``object_id`` (the deep link ``object/<survey>/<id>``)."""
    base = base or pn.state.base_url or "/"
    oid = html.escape(str(object_id))
    return f'<a href="{base}object/{html.escape(survey)}/{oid}" target="_self">{oid}</a>'


def banner(exc_or_text, kind: str = "danger") -> pn.pane.Alert:
    text = exc_or_text if isinstance(exc_or_text, str) else explain(exc_or_text)
    # no math rendering: API messages name operators ("$match ... $gt"), which are not TeX
    return pn.pane.Alert(html.escape(text), alert_type=kind, css_classes=["kw-message"], sizing_mode="stretch_width",
                         disable_math=True)


def header(active: str, user: str | None = None) -> pn.Row:
    base = pn.state.base_url or "/"
    links = " · ".join(f"<b>{t}</b>" if name == active else f'<a href="{base}{name}">{t}</a>' for name, t in PAGES)
    who = f"{html.escape(user)} · <a href='/hub/home'>hub</a> · <a href='/hub/logout'>log out</a>" if user else ""
    return pn.Row(pn.pane.HTML("<h2 style='margin:4px 0'>Kowalski</h2>"), pn.pane.HTML(links, margin=(14, 20)),
                  pn.HSpacer(), pn.pane.HTML(who, margin=(14, 10)), sizing_mode="stretch_width")


def start(active: str):
    """(session, layout) for a page, or (None, layout with the reason) when it cannot act."""
    pn.extension("tabulator", notifications=False)
    layout = pn.Column(sizing_mode="stretch_width")
    try:
        session = PageSession()
    except Exception as exc:  # noqa: BLE001 - shown to the user
        layout.extend([header(active), banner(exc)])
        return None, layout
    layout.append(header(active, session.user))
    return session, layout


def arg(name: str, default: str = "") -> str:
    """A query argument of the page's URL (deep links)."""
    values = (pn.state.session_args or {}).get(name)
    return values[0].decode(errors="replace").strip() if values else default
