r"""A local stand-in for the SkyPortal endpoints Kowalski's broker calls (kowalski.md Appendix B).

The only stand-in the tests use (SkyPortal is an external system we do not run). Every request is
checked as SkyPortal checks it and recorded; an invalid request is answered 400
``{"status": "error", "message": ...}`` (as SkyPortal's ``BaseHandler.error``) and listed in
``invalid``. The state it keeps (objects, candidates, sources and their groups, annotations,
photometry, thumbnails, comments, follow-up requests) answers the HEAD/GET calls as SkyPortal would.

Where the checks come from: SkyPortal's own source, skyportal/skyportal at commit
8bd346c0d453f3a69d457056e621bb50607e7ab1 (2026-08-21, ``git describe``: 2026-08-20-2-g8bd346c0d):

- ``POST /api/candidates`` — skyportal/handlers/api/candidate/candidate.py ``CandidateHandler.post``:
  ``id`` required (numbers are turned into strings), ``passed_at`` required, non-null and parseable,
  ``filter_ids`` required and at least one of them a known filter; for a *new* object ``ra``/``dec``
  non-null and the rest of the body loaded by ``Obj.__schema__()`` (marshmallow, unknown keys
  raise: a misspelled ``passing_alert_idx`` is refused); for an existing object the rest is ignored.
  Obj's columns: skyportal/models/obj.py ``class Obj``; the schema's exclusions:
  skyportal/models/schema.py ``setup_schema``.
- ``POST /api/sources`` — skyportal/handlers/api/source.py ``SourceHandler.post`` /
  ``post_source_async``: id pattern ``^[a-zA-Z0-9_\-;:+.]+$``, ``ra``/``dec`` for a new object,
  ``group_ids`` the user's groups, ``ignore_if_in_group_ids`` a dict keyed by ids in ``group_ids``,
  ``saver_per_group_id`` a dict; a new object's other keys loaded by ``Obj.__schema__()`` (so
  ``ignore_if_in_group_ids`` on a *new* object is an unknown field there).
- annotations — skyportal/handlers/api/annotation.py ``AnnotationPostBody`` / ``AnnotationPutBody``
  (pydantic, ``extra="ignore"``: unknown keys such as ``obj_id``/``author_id`` are accepted);
  ``origin`` matches ``^\w+``; one annotation per origin.
- ``POST /api/thumbnail`` — skyportal/handlers/api/thumbnail.py ``ThumbnailPostBody`` (pydantic,
  ``extra="forbid"``) and ``post_thumbnail``: the object must exist, PNG only, *each* side between
  16 and 500 px; ``ttype`` one of skyportal/enum_types.py ``THUMBNAIL_TYPES``.
- ``PUT /api/photometry`` — skyportal/handlers/api/photometry.py ``standardize_photometry_data``
  with skyportal/models/schema.py ``PhotBaseFlexible`` + ``PhotFluxFlexible`` (marshmallow,
  unknown keys raise; ``fluxerr`` numbers > 0, ``validate_fluxerr``); arrays of one length; filters
  in ``ALLOWED_BANDPASSES`` (the sncosmo bandpasses listed below), magsys in ``ALLOWED_MAGSYSTEMS``.
- comments — skyportal/handlers/api/comment.py ``CommentHandler.post`` (reads ``text``,
  ``attachment``, ``group_ids``; other keys are not checked).
- ``POST``/``PUT /api/followup_request`` — skyportal/handlers/api/followup_request.py and
  skyportal/models/schema.py ``FollowupRequestPost`` (marshmallow, unknown keys raise; ``obj_id`` and
  ``allocation_id`` required, also on a PUT that does not only set ``status``).

The checks SkyPortal makes against its own database that the stand-in cannot know (permissions,
allocations, instruments' APIs) are left out; groups and filters are the ones given to it.

    sp = SkyPortalStandIn(token="t"); sp.start(); ...; sp.stop(); sp.start()  # same port again
    sp.fail_with = 503           # answer every request with 503 until reset to None
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs

SKYPORTAL_COMMIT = "8bd346c0d453f3a69d457056e621bb50607e7ab1"

INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
INTS = {"type": "array", "items": INT}
NULL_OR = lambda t: {"type": [t, "null"]}  # noqa: E731
# sncosmo's built-in bandpasses that SkyPortal's ALLOWED_BANDPASSES includes (the ones used here)
BANDPASSES = ["ztfg", "ztfr", "ztfi", "sdssu", "sdssg", "sdssr", "sdssi", "sdssz", "2massj", "2massh", "2massks",
              "ps1::g", "ps1::r", "ps1::i", "ps1::z", "ps1::y", "cspjs"]
MAGSYSTEMS = ["ab", "vega"]
THUMBNAIL_TYPES = ["new", "ref", "sub", "sdss", "dr8", "ls", "ps1", "sm", "hst", "chandra", "jwst",
                   "new_gz", "ref_gz", "sub_gz"]  # skyportal/enum_types.py THUMBNAIL_TYPES

# Obj.__schema__(): the columns of skyportal/models/obj.py Obj (+ ra, dec of conesearch_alchemy.Point),
# less setup_schema's exclusions (time_interval, healpix, created_at, modified); relationships are dump-only
OBJ_COLUMNS = {
    "id": STR, "ra": NULL_OR("number"), "dec": NULL_OR("number"), "ra_dis": NULL_OR("number"),
    "dec_dis": NULL_OR("number"), "ra_err": NULL_OR("number"), "dec_err": NULL_OR("number"),
    "offset": NULL_OR("number"), "redshift": NULL_OR("number"), "redshift_error": NULL_OR("number"),
    "redshift_origin": NULL_OR("string"), "redshift_history": {}, "host_id": NULL_OR("integer"),
    "summary": NULL_OR("string"), "summary_history": {}, "altdata": {}, "dist_nearest_source": NULL_OR("number"),
    "mag_nearest_source": NULL_OR("number"), "e_mag_nearest_source": NULL_OR("number"),
    "transient": NULL_OR("boolean"), "varstar": NULL_OR("boolean"), "is_roid": NULL_OR("boolean"),
    "mpc_name": NULL_OR("string"), "tns_name": NULL_OR("string"), "tns_info": {}, "score": NULL_OR("number"),
    "origin": NULL_OR("string"), "alias": {"type": ["array", "null"], "items": STR},
    "internal_key": NULL_OR("string"), "detect_photometry_count": NULL_OR("integer"),
}


def _obj(extra: dict, required=("id",), new_obj=False) -> dict:
    """An Obj body plus the keys the handler pops first; unknown keys refused only for a new object."""
    schema = {"type": "object", "required": list(required), "properties": {**OBJ_COLUMNS, **extra}}
    if new_obj:
        schema["additionalProperties"] = False
    return schema


CANDIDATE_EXTRA = {"id": {"type": ["string", "integer"]}, "filter_ids": {**INTS, "minItems": 1},
                   "passing_alert_id": NULL_OR("integer"), "passed_at": STR}
SOURCE_EXTRA = {"id": {"type": ["string", "integer"]}, "group_ids": INTS, "refresh_source": {"type": "boolean"},
                "saver_per_group_id": {"type": "object", "additionalProperties": INT},
                "ignore_if_in_group_ids": {"type": "object", "additionalProperties": INTS}}
PHOT_ARRAY = lambda item: {"type": "array", "items": item}  # noqa: E731
FOLLOWUP_POST = {
    "type": "object", "required": ["obj_id", "allocation_id"], "additionalProperties": False, "properties": {
        "obj_id": STR, "payload": {"type": "object"}, "status": STR, "allocation_id": INT, "target_group_ids": INTS,
        "not_if_duplicates": {"type": "boolean"}, "source_group_ids": INTS, "not_if_classified": {"type": "boolean"},
        "not_if_spectra_exist": {"type": "boolean"}, "not_if_tns_classified": {"type": "boolean"},
        "not_if_tns_reported": NUM, "not_if_assignment_exists": {"type": "boolean"},
        "ignore_source_group_ids": INTS, "radius": NUM, "ignore_allocation_ids": INTS,
        "refreshSource": {"type": "boolean"}, "refreshRequests": {"type": "boolean"}}}

SCHEMAS = {
    ("POST", "/api/candidates", "new"): _obj(CANDIDATE_EXTRA, ("id", "filter_ids", "passed_at"), new_obj=True),
    ("POST", "/api/candidates", "existing"): _obj(CANDIDATE_EXTRA, ("id", "filter_ids", "passed_at")),
    ("POST", "/api/sources", "new"): _obj({**SOURCE_EXTRA, "ignore_if_in_group_ids": False}, new_obj=True),
    ("POST", "/api/sources", "existing"): _obj(SOURCE_EXTRA),
    ("POST", "annotations"): {
        "type": "object", "required": ["origin", "data"], "properties": {
            "origin": {"type": "string", "pattern": r"^\w+"}, "data": {"type": "object"},
            "group_ids": {"type": ["array", "null"], "items": INT}}},
    ("PUT", "annotations"): {
        "type": "object", "properties": {
            "origin": {"type": ["string", "null"]}, "data": {"type": ["object", "null"]},
            "group_ids": {"type": ["array", "null"], "items": INT}}},
    ("POST", "comments"): {"type": "object", "properties": {"text": NULL_OR("string"), "group_ids": INTS,
                                                              "attachment": {"type": "object"}}},
    ("POST", "/api/thumbnail"): {
        "type": "object", "required": ["obj_id", "data", "ttype"], "additionalProperties": False, "properties": {
            "obj_id": STR, "data": STR, "ttype": STR, "survey": NULL_OR("string")}},
    ("PUT", "/api/photometry"): {
        "type": "object", "required": ["mjd", "filter", "obj_id", "instrument_id", "magsys", "fluxerr", "zp"],
        "additionalProperties": False,
        "properties": {  # PhotBaseFlexible + PhotFluxFlexible (+ extinction_corrected, popped first)
            "mjd": PHOT_ARRAY(NUM), "filter": PHOT_ARRAY({"enum": BANDPASSES}), "obj_id": STR,
            "instrument_id": INT, "assignment_id": INT, "ra": PHOT_ARRAY(NULL_OR("number")),
            "dec": PHOT_ARRAY(NULL_OR("number")), "ra_unc": PHOT_ARRAY(NULL_OR("number")),
            "dec_unc": PHOT_ARRAY(NULL_OR("number")), "origin": PHOT_ARRAY(NULL_OR("string")),
            "group_ids": INTS, "stream_ids": INTS, "altdata": {"type": "object"},
            "magsys": PHOT_ARRAY({"enum": MAGSYSTEMS}), "flux": PHOT_ARRAY(NULL_OR("number")),
            "fluxerr": PHOT_ARRAY({"type": "number", "exclusiveMinimum": 0}), "zp": PHOT_ARRAY(NUM),
            "ref_flux": PHOT_ARRAY(NULL_OR("number")),
            "ref_fluxerr": PHOT_ARRAY({"type": "number", "exclusiveMinimum": 0}),
            "ref_zp": PHOT_ARRAY(NULL_OR("number")), "extinction_corrected": {"type": "boolean"}}},
    ("POST", "/api/followup_request"): FOLLOWUP_POST,
    ("PUT", "/api/followup_request"): FOLLOWUP_POST,
}
VALIDATORS = {k: jsonschema_rs.validator_for(v) for k, v in SCHEMAS.items()}
SOURCE_ID = re.compile(r"^[a-zA-Z0-9_\-;:+.]+$")

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
        if not isinstance(body, dict):
            raise Invalid(f"invalid {key[0]} {key[1]} body: not a JSON object")
        errors = [f"{'/'.join(map(str, e.instance_path)) or 'body'}: {e.message}"
                  for e in VALIDATORS[key].iter_errors(body)]
        if errors:
            raise Invalid(f"Invalid/missing parameters ({key[0]} {key[1]}): " + "; ".join(errors[:5]))

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

    def _known_obj(self, oid) -> bool:
        return oid in self.candidates or oid in self.sources

    def _known_filters(self) -> set:
        return {f["id"] for g in self.groups.values() for f in g.get("filters", [])}

    def post_candidate(self, body, q):
        if not isinstance(body, dict) or body.get("id") is None:
            raise Invalid("Missing required parameter: `id`.")
        oid = str(body["id"])
        new = not self._known_obj(oid)
        if new and body.get("ra") is None:
            raise Invalid("RA must not be null for a new Obj")
        if new and body.get("dec") is None:
            raise Invalid("Dec must not be null for a new Obj")
        if body.get("passed_at") is None:
            raise Invalid("Missing required parameter: `passed_at`.")
        self.check(("POST", "/api/candidates", "new" if new else "existing"), body)
        try:
            dt.datetime.fromisoformat(body["passed_at"])
        except ValueError as exc:
            raise Invalid(f"Invalid passedAt value: {exc}") from None
        known = self._known_filters()
        if known and not set(body["filter_ids"]) & known:
            raise Invalid("At least one valid filter ID must be provided.")
        self.candidates.setdefault(oid, []).extend(
            (f, body.get("passing_alert_id")) for f in body["filter_ids"] if not known or f in known)
        return 200, {"ids": body["filter_ids"]}

    def post_source(self, body, q):
        if not isinstance(body, dict) or body.get("id") is None:
            raise Invalid("Failed to post source: 'id'")
        oid = str(body["id"])
        if not SOURCE_ID.match(oid):
            raise Invalid("Failed to post source: Only letters, numbers, underscores, semicolons, colons, +, -, "
                          "and periods are allowed in source ID")
        new = not self._known_obj(oid)
        if new and (body.get("ra") is None or body.get("dec") is None):
            raise Invalid("Failed to post source: RA/Declination must not be null for a new Obj")
        if self.groups and any(g not in self.groups for g in body.get("group_ids") or []):
            bad = next(g for g in body["group_ids"] if g not in self.groups)
            raise Invalid(f"Failed to post source: Cannot find group_id {bad}. Please remove and try again.")
        ignore = body.get("ignore_if_in_group_ids") or {}
        if not isinstance(ignore, dict) or not all(str(k).isdigit() for k in ignore) or \
                not {int(k) for k in ignore} <= set(body.get("group_ids") or []):
            raise Invalid("Failed to post source: Invalid ignore_if_in_group_ids field.")
        self.check(("POST", "/api/sources", "new" if new else "existing"), body)
        self.sources.setdefault(oid, set()).update(body.get("group_ids") or self.groups or [])
        return 200, {"id": oid, "saved_to_groups": body.get("group_ids")}

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
        self.check(("PUT", "annotations"), body)
        a = next((a for a in self.annotations if a["id"] == int(aid) and a["obj_id"] == oid), None)
        if a is None:
            raise Invalid(f"no annotation {aid} on {oid}")
        if body.get("data") is not None:
            a["data"] = body["data"]
        return 200, None

    def source_groups(self, body, q, oid):
        return 200, [{"id": g} for g in sorted(self.sources.get(oid, ()))]

    def post_comment(self, body, q, oid):
        self.check(("POST", "comments"), body)
        self.comments.append({"obj_id": oid, **body})
        return 200, {"comment_id": len(self.comments)}

    def put_photometry(self, body, q):
        if not isinstance(body, dict):
            raise Invalid(f"Top level JSON must be an instance of `dict`, got {type(body)}.")
        # SkyPortal broadcasts scalars; lists go to one pandas DataFrame, so they must all be of one length
        per_point = ("mjd", "flux", "fluxerr", "zp", "magsys", "filter", "ra", "dec", "origin", "ra_unc", "dec_unc",
                     "ref_flux", "ref_fluxerr", "ref_zp")
        lengths = {k: len(v) for k, v in body.items() if k in per_point and isinstance(v, list)}
        n = max(lengths.values(), default=1)
        for k, m in lengths.items():
            if m != n:
                raise Invalid(f"Unable to coerce passed JSON to a series of packets: {k} has {m} values, "
                              f"another array has {n}")
        body = {k: (v if k not in per_point or isinstance(v, list) else [v] * n) for k, v in body.items()}
        self.check(("PUT", "/api/photometry"), body)
        col = body
        new = 0
        for i in range(n):
            key = (body["obj_id"], round(col["mjd"][i], 8), col["filter"][i], (col.get("origin") or [None] * n)[i])
            if key not in self.photometry:
                new += 1
            self.photometry[key] = {k: col[k][i] for k in ("mjd", "flux", "fluxerr", "zp", "filter")}
        return 200, {"ids": list(range(n)), "new": new}

    def post_thumbnail(self, body, q):
        self.check(("POST", "/api/thumbnail"), body)
        from PIL import Image

        if not self._known_obj(body["obj_id"]):
            raise Invalid(f"Thumbnail failed to post: Invalid obj_id: {body['obj_id']}")
        try:
            im = Image.open(io.BytesIO(base64.b64decode(body["data"], validate=True)))
        except Exception as exc:  # noqa: BLE001
            raise Invalid(f"Thumbnail failed to post: Invalid file type: {exc}") from None
        if im.format != "PNG":
            raise Invalid("Thumbnail failed to post: Invalid thumbnail image type. Only PNG are supported.")
        if not all(16 <= x <= 500 for x in im.size):  # each side, as post_thumbnail checks
            raise Invalid("Thumbnail failed to post: Invalid thumbnail size. Only thumbnails between (16, 16) "
                          "and (500, 500) allowed.")
        if body["ttype"] not in THUMBNAIL_TYPES:
            raise Invalid(f"Thumbnail failed to post: Invalid ttype: {body['ttype']!r}")
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
        f = next((f for f in self.followups if f["id"] == int(fid)), None)
        if f is None:
            raise Invalid(f"Missing FollowUpRequest with id {fid}")
        if isinstance(body, dict) and "status" in body:  # a status update: set as given, not validated
            f.update(body)
            return 200, None
        self.check(("PUT", "/api/followup_request"), body)
        f["payload"] = body.get("payload", f.get("payload"))
        return 200, None
