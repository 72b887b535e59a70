"""``/docs/api/openapi.json`` (OpenAPI 3) and ``/docs/api`` (the same, as a self-contained page)."""

from __future__ import annotations

import json

from api.base import BaseHandler


class OpenAPIHandler(BaseHandler):
    async def get(self):
        """The OpenAPI description."""
        from api.openapi import build_spec
        self.finish(json.dumps(build_spec(self.config)))


class DocsHandler(BaseHandler):
    async def get(self):
        """The OpenAPI description rendered as HTML."""
        from api.openapi import build_spec, render_html
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(render_html(build_spec(self.config)))


default_handlers = [
    (r"/docs/api/openapi\.json", OpenAPIHandler),
    (r"/docs/api/swagger\.json", OpenAPIHandler),
    (r"/docs/api/?", DocsHandler),
]
