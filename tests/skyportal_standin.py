"""A local stand-in for the SkyPortal endpoints Kowalski's broker calls (kowalski.md Appendix B).

The only stand-in the tests use (SkyPortal is an external system we do not run). Every request is
checked against SkyPortal's documented API — path, method, token header, JSON body fields and types
(the request-body schemas of SkyPortal's handler docstrings: candidate ``ObjPost`` + ``filter_ids`` +
``passed_at``, ``PhotometryFlux``, annotation, thumbnail, source, comment, follow-up request) plus
what the handlers enforce (thumbnails are PNG between 100 and 500 px, photometry arrays of equal
length, known bandpasses and magnitude systems) — and recorded. An invalid request is answered
400 and listed in ``invalid``. The state it keeps (candidates, sources and their groups,
annotations, photometry, thumbnails, comments, follow-up requests) answers the HEAD/GET calls as
SkyPortal would.

    sp = SkyPortalStandIn(token="t"); sp.start(); ...; sp.stop(); sp.start()  # same port again
    sp.fail_with = 503           # answer every request with 503 until reset to None
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs

INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
INTS = {"type": "array", "items": INT}
NUMS_OR_NULL = {"type": "array", "items": {"type": ["number", "null"]}}
BANDPASSES = ["ztfg", "ztfr", "ztfi", "sdssu", "sdssg", "sdssr", "sdssi", "sdssz", "2massj", "2massh", "2massks",
              "ps1::g", "ps1::r", "ps1::i", "ps1::z", "ps1::y", "cspjs"]

SCHEMAS = {
    ("POST", "/api/candidates"): {
        "type": "object", "required": ["id", "filter_ids", "passed_at"], "properties": {
            "id": STR, "ra": NUM, "dec": NUM, "score": {"type": ["number", "null"]},
            "filter_ids": {**INTS, "minItems": 1}, "passing_alert_id": {"type": ["integer", "null"]},
            "passed_at": {"type": ["string", "null"]}, "origin": STR}},
    ("POST", "/api/sources"): {
        "type": "object", "required": ["id"], "properties": {
            "id": STR, "group_ids": INTS, "origin": STR,
            "ignore_if_in_group_ids": {"type": "object", "additionalProperties": INTS},
            "saver_per_group_id": {"type": "object", "additionalProperties": INT}}},
    ("POST", "annotations"): {
        "type": "object", "required": ["origin", "data"], "properties": {
            "obj_id": STR, "origin": {"type": "string", "minLength": 1}, "data": {"type": "object"},
            "group_ids": INTS, "author_id": {"type": ["integer", "null"]}}},
    ("POST", "comments"): {"type": "object", "required": ["text"], "properties": {"text": STR, "group_ids": INTS}},
    ("POST", "/api/thumbnail"): {
        "type": "object", "required": ["obj_id", "data", "ttype"], "properties": {
            "obj_id": STR, "data": STR,
            "ttype": {"enum": ["new", "ref", "sub", "sdss", "dr8", "ls", "ps1", "new_gz", "ref_gz", "sub_gz"]}}},
    ("PUT", "/api/photometry"): {
        "type": "object", "required": ["obj_id", "instrument_id", "mjd", "flux", "fluxerr", "zp", "magsys", "filter"],
        "properties": {
            "obj_id": STR, "instrument_id": INT, "stream_ids": INTS, "group_ids": INTS,
            "mjd": {"type": "array", "items": NUM}, "flux": NUMS_OR_NULL, "fluxerr": {"type": "array", "items": NUM},
            "zp": {"type": "array", "items": NUM}, "magsys": {"type": "array", "items": {"enum": ["ab", "vega"]}},
            "filter": {"type": "array", "items": {"enum": BANDPASSES}}, "ra": NUMS_OR_NULL, "dec": NUMS_OR_NULL,
            "origin": {"type": "array", "items": {"type": ["string", "null"]}}}},
    ("POST", "/api/followup_request"): {
        "type": "object", "required": ["obj_id", "allocation_id", "payload"], "properties": {
            "obj_id": STR, "allocation_id": INT, "payload": {"type": "object"}, "target_group_ids": INTS,
            "source_group_ids": INTS, "ignore_allocation_ids": INTS, "radius": NUM}},
    ("PUT", "/api/followup_request"): {
        "type": "object", "required": ["payload"], "properties": {
            "obj_id": STR, "allocation_id": INT, "payload": {"type": "object"}}},
}
VALIDATORS = {k: jsonschema_rs.validator_for(v) for k, v in SCHEMAS.items()}

ROUTES = [  # (method, regex, handler name)
    ("GET", r"/api/streams", "streams"), ("GET", r"/api/instrument", "instrument"),
    ("GET", r"/api/groups/(\d+)", "group"),
    ("HEAD", r"/api/candidates/([^/]+)", "head_candidate"), ("HEAD", r"/api/sources/([^/]+)", "head_source"),
    ("POST", r"/api/candidates", "post_candidate"), ("POST", r"/api/sources", "post_source"),
    ("GET", r"/api/sources/([^/]+)/annotations", "get_annotations"),
    ("POST", r"/api/sources/([^/]+)/annotations", "post_annotation"),
    ("PUT", r"/api/sources/([^/]+)/annotations/(\d+)", "put_annotation"),
    ("GET", r"/api/sources/([^/]+)/groups", "source_groups"),
    ("POST", r"/api/sources/([^/]+)/comments", "post_comment"),
    ("PUT", r"/api/photometry", "put_photometry"), ("POST", r"/api/thumbnail", "post_thumbnail"),
    ("GET", r"/api/followup_request", "get_followup"), ("POST", r"/api/followup_request", "post_followup"),
    ("PUT", r"/api/followup_request/(\d+)", "put_followup"),
]


class Invalid(Exception):
    pass


class SkyPortalStandIn:
    def __init__(self, token: str = "standin-token", port: int = 0, groups: dict | None = None):
        self.token = token
        self.port = port
        self.groups = groups or {}
        self.fail_with: int | None = None
        self.fail_on: tuple[str, str] | None = None  # (method, path regex) answered 500
        self.lock = threading.Lock()
        self.requests: list[dict] = []   # every valid request (method, path, query, body)
        self.invalid: list[dict] = []    # refused requests with the reason
        self.candidates: dict[str, list[tuple]] = {}   # obj_id -> [(filter_id, passing_alert_id)]
        self.sources: dict[str, set] = {}              # obj_id -> group ids
        self.annotations: list[dict] = []
        self.photometry: dict[tuple, dict] = {}        # (obj, mjd, filter, origin) -> row
        self.thumbnails: list[tuple] = []
        self.comments: list[dict] = []
        self.followups: list[dict] = []
        self.server: ThreadingHTTPServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "SkyPortalStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                standin.handle(self)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # --- requests -----------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if self.fail_with is not None:
            return self._reply(h, self.fail_with, {"status": "error", "message": "stand-in set to fail"})
        if self.fail_on is not None and h.command == self.fail_on[0] and re.fullmatch(self.fail_on[1], url.path):
            return self._reply(h, 500, {"status": "error", "message": "stand-in set to fail this endpoint"})
        req = {"method": h.command, "path": url.path, "query": {k: v[-1] for k, v in parse_qs(url.query).items()}}
        try:
            if h.headers.get("Authorization") != f"token {self.token}":
                raise Invalid("missing or wrong 'Authorization: token <token>' header")
            body = None
            if h.command in ("POST", "PUT"):
                if h.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    raise Invalid("body must be application/json")
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise Invalid(f"body is not JSON: {exc}") from None
            req["body"] = body
            for method, rx, name in ROUTES:
                m = re.fullmatch(rx, url.path)
                if m and method == h.command:
                    with self.lock:
                        status, data = getattr(self, name)(body, req["query"], *m.groups())
                        self.requests.append(req)
                    return self._reply(h, status, {"status": "success", "data": data} if status == 200 else data)
            raise Invalid(f"no SkyPortal endpoint {h.command} {url.path}")
        except Invalid as exc:
            with self.lock:
                self.invalid.append({**req, "reason": str(exc)})
            return self._reply(h, 400, {"status": "error", "message": str(exc)})

    def _reply(self, h, status: int, payload) -> None:
        out = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(out)

    @staticmethod
    def check(key, body) -> None:
        errors = [f"{'/'.join(map(str, e.instance_path)) or 'body'}: {e.message}"
                  for e in VALIDATORS[key].iter_errors(body)]
        if errors:
            raise Invalid(f"invalid {key[0]} {key[1]} body: " + "; ".join(errors[:5]))

    # --- endpoints --------------------------------------------------------------------------
    def streams(self, body, q):
        return 200, [{"id": 1, "name": "ZTF Public"}, {"id": 2, "name": "ZTF Public+Partnership"},
                     {"id": 3, "name": "ZTF Public+Partnership+Caltech"}]

    def instrument(self, body, q):
        if q.get("name") != "ZTF":
            return 200, []
        return 200, [{"id": 7, "name": "ZTF"}]

    def group(self, body, q, gid):
        g = self.groups.get(int(gid))
        if g is None:
            return 400, {"status": "error", "message": f"Cannot find group with id {gid}"}
        return 200, {"id": int(gid), **g}

    def head_candidate(self, body, q, oid):
        return (200 if oid in self.candidates else 404), None

    def head_source(self, body, q, oid):
        return (200 if oid in self.sources else 404), None

    def post_candidate(self, body, q):
        self.check(("POST", "/api/candidates"), body)
        self.candidates.setdefault(body["id"], []).extend(
            (f, body.get("passing_alert_id")) for f in body["filter_ids"])
        return 200, {"ids": body["filter_ids"]}

    def post_source(self, body, q):
        self.check(("POST", "/api/sources"), body)
        self.sources.setdefault(body["id"], set()).update(body.get("group_ids") or [])
        return 200, {"id": body["id"]}

    def get_annotations(self, body, q, oid):
        return 200, [a for a in self.annotations if a["obj_id"] == oid]

    def post_annotation(self, body, q, oid):
        self.check(("POST", "annotations"), body)
        if any(a["obj_id"] == oid and a["origin"] == body["origin"] for a in self.annotations):
            raise Invalid(f"annotation from origin {body['origin']!r} already exists on {oid}: use PUT")
        a = {"id": len(self.annotations) + 1, "obj_id": oid, "origin": body["origin"], "data": body["data"],
             "author_id": 1, "group_ids": body.get("group_ids") or []}
        self.annotations.append(a)
        return 200, {"annotation_id": a["id"]}

    def put_annotation(self, body, q, oid, aid):
        self.check(("POST", "annotations"), body)
        a = next((a for a in self.annotations if a["id"] == int(aid) and a["obj_id"] == oid), None)
        if a is None:
            raise Invalid(f"no annotation {aid} on {oid}")
        a["data"] = body["data"]
        return 200, None

    def source_groups(self, body, q, oid):
        return 200, [{"id": g} for g in sorted(self.sources.get(oid, ()))]

    def post_comment(self, body, q, oid):
        self.check(("POST", "comments"), body)
        self.comments.append({"obj_id": oid, **body})
        return 200, {"comment_id": len(self.comments)}

    def put_photometry(self, body, q):
        self.check(("PUT", "/api/photometry"), body)
        n = len(body["mjd"])
        for k in ("flux", "fluxerr", "zp", "magsys", "filter", "ra", "dec", "origin"):
            if k in body and len(body[k]) != n:
                raise Invalid(f"photometry arrays differ in length: mjd has {n}, {k} has {len(body[k])}")
        new = 0
        for i in range(n):
            key = (body["obj_id"], round(body["mjd"][i], 8), body["filter"][i], (body.get("origin") or [None] * n)[i])
            if key not in self.photometry:
                new += 1
            self.photometry[key] = {k: body[k][i] for k in ("mjd", "flux", "fluxerr", "zp", "filter")}
        return 200, {"ids": list(range(n)), "new": new}

    def post_thumbnail(self, body, q):
        self.check(("POST", "/api/thumbnail"), body)
        from PIL import Image

        try:
            im = Image.open(io.BytesIO(base64.b64decode(body["data"], validate=True)))
        except Exception as exc:  # noqa: BLE001
            raise Invalid(f"thumbnail data is not a base64 image: {exc}") from None
        if im.format != "PNG":
            raise Invalid("Invalid thumbnail image type. Only PNG are supported.")
        if not (100, 100) <= im.size <= (500, 500):
            raise Invalid("Invalid thumbnail size. Only thumbnails between (100, 100) and (500, 500) allowed.")
        self.thumbnails.append((body["obj_id"], body["ttype"]))
        return 200, {"id": len(self.thumbnails)}

    def get_followup(self, body, q):
        oid = q.get("sourceID")
        return 200, [f for f in self.followups if f["obj_id"] == oid]

    def post_followup(self, body, q):
        self.check(("POST", "/api/followup_request"), body)
        f = {"id": len(self.followups) + 1, "status": "submitted", **body}
        self.followups.append(f)
        return 200, {"id": f["id"]}

    def put_followup(self, body, q, fid):
        self.check(("PUT", "/api/followup_request"), body)
        f = next((f for f in self.followups if f["id"] == int(fid)), None)
        if f is None:
            raise Invalid(f"no follow-up request {fid}")
        f["payload"] = body["payload"]
        return 200, None
