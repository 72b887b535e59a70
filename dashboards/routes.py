"""Extra routes of the dashboards' Panel server (``panel serve --plugins dashboards.routes``):
the hub OAuth callback, and deep links such as ``object/ztf/ZTF20aakyoez`` and ``filters/7``,
which open the page with the object (``object?survey=ztf&id=ZTF20aakyoez``) or the filter
(``filters?id=7``)."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.web import RequestHandler

from dashboards.auth import OAuthCallback


class _Link(RequestHandler):
    page = ""

    def go(self, **query):
        base = self.request.path.rsplit(f"/{self.page}/", 1)[0]
        self.redirect(f"{base}/{self.page}?{urlencode(query)}")


class ObjectLink(_Link):
    page = "object"

    def get(self, survey: str, object_id: str):
        self.go(survey=survey, id=object_id)


class FilterLink(_Link):
    page = "filters"

    def get(self, filter_id: str):
        self.go(id=filter_id)


ROUTES = [
    (r"/oauth_callback", OAuthCallback),
    (r"/object/([^/]+)/([^/]+)/?", ObjectLink),
    (r"/filters/([0-9]+)/?", FilterLink),
]
