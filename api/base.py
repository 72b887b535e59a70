"""The base handler: JSON bodies, the error envelope, serialisation and authorisation.

Every handler of the API derives from :class:`BaseHandler`; authorisation is declared per method
with the :func:`authenticated` and :func:`admin_only` decorators (JupyterHub's apihandlers style).

Envelope (Kowalski-compatible): ``{"status": "success"|"error", "message": ..., "data": ...}``,
success bodies in MongoDB relaxed extended JSON (``bson.json_util``). Error bodies for 401/403
carry the HTTP reason phrase ("Unauthorized", "Forbidden") as Kowalski's middleware did; every
other error says what is wrong. No traceback ever reaches a client.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Awaitable, Callable

import tornado.web
from bson import json_util
from bson.errors import BSONError
from api import auth as _auth
from kowalski.db import DatabaseError, DatabaseUnavailable, QueryFailure, QueryTimeout

log = logging.getLogger("kowalski.api")
access_log = logging.getLogger("kowalski.api.access")

JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS
_MISSING = object()


class APIError(Exception):
    """An error answered to the client as ``{"status": "error", "message": ...}``."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def dumps(obj: Any) -> str:
    """MongoDB relaxed extended JSON, as Kowalski's ``bson.json_util.dumps``."""
    return json_util.dumps(obj, json_options=JSON_OPTIONS)


def loads(text: str | bytes) -> Any:
    """Parse a request body: JSON, also accepting MongoDB extended JSON values ($oid, $date...)."""
    return json_util.loads(text, json_options=JSON_OPTIONS)


def authenticated(method: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """The method needs a valid token of an existing user: 401 "Unauthorized" otherwise."""

    @functools.wraps(method)
    async def wrapper(self: "BaseHandler", *args, **kwargs):
        await self.authenticate()
        if self.current_user is None:
            raise APIError(401, "Unauthorized")
        return await method(self, *args, **kwargs)

    wrapper.__auth__ = "user"  # read by the OpenAPI generator
    return wrapper


def admin_only(method: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """The method needs the admin: 401 without a user, 403 "Forbidden" for other users."""

    @functools.wraps(method)
    async def wrapper(self: "BaseHandler", *args, **kwargs):
        await self.authenticate()
        if self.current_user is None:
            raise APIError(401, "Unauthorized")
        if not self.is_admin:
            raise APIError(403, "Forbidden")
        return await method(self, *args, **kwargs)

    wrapper.__auth__ = "admin"
    return wrapper


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Owns body parsing, authentication, the envelope, serialisation and error mapping.

    Bodies are streamed so that an oversize one is answered with a 413 and a message (tornado
    itself would only drop the connection): a declared Content-Length over ``api.max_body_bytes``
    is refused before the body is read, an undeclared (chunked) one once it passes the limit.
    """

    current_user: dict | None

    def initialize(self) -> None:
        self.current_user = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._t0 = time.perf_counter()
        self.db_seconds = 0.0  # time spent waiting for the database (for logs and benchmarks)
        self.state.inflight += 1  # drained on SIGTERM before connections are closed
        self._counted = True

    # --- context -----------------------------------------------------------------------
    @property
    def config(self):
        return self.settings["config"]

    @property
    def db(self):
        return self.settings["db"]

    @property
    def state(self):
        """Per-process caches (users, catalog names)."""
        return self.settings["state"]

    @property
    def username(self) -> str | None:
        return self.current_user["_id"] if self.current_user else None

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user) and self.current_user["_id"] == self.config["admin"]["username"]

    # --- request -----------------------------------------------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Server", "Kowalski")

    async def prepare(self) -> None:
        # Bodies up to 4x the limit are read (and dropped) so that the client gets its 413 with a
        # message; anything larger is refused at once (the connection is then closed).
        limit = int(self.config["api"]["max_body_bytes"])
        length = self.request.headers.get("Content-Length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise APIError(400, "invalid Content-Length header") from None
            if n > 4 * limit:
                self._unread_body = True  # answered before the body: no keep-alive
                raise APIError(413, f"request body too large: {n} bytes, the limit is {limit} bytes")

    async def authenticate(self) -> None:
        """Read the token (``Authorization: <token>`` or ``Bearer <token>``), once the body is in."""
        header = self.request.headers.get("Authorization")
        if header is None or self.current_user is not None:
            return
        username = _auth.decode_header(self.config, header)
        user = await self.state.users.get(self.db, username, self)
        if user is None:  # a valid signature for a user who no longer exists
            raise APIError(401, "Unauthorized")
        self.current_user = user

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._too_large:
            return
        if self._size > int(self.config["api"]["max_body_bytes"]):
            self._too_large = True
            self._chunks = []
            return
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        if self._too_large:
            limit = int(self.config["api"]["max_body_bytes"])
            raise APIError(413, f"request body too large: more than {limit} bytes")
        return b"".join(self._chunks)

    def json_body(self, required: bool = True) -> Any:
        body = self.body
        if not body.strip():
            if required:
                raise APIError(400, "missing request body: expected a JSON object")
            return {}
        try:
            return loads(body)
        except RecursionError:
            raise APIError(400, "malformed JSON body: nested too deeply") from None
        except (ValueError, TypeError, KeyError, OverflowError, BSONError) as exc:
            msg = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
            raise APIError(400, f"malformed JSON body: {msg}") from None

    def page_args(self) -> tuple[int, int]:
        """``?offset=&limit=`` as JupyterHub's API pages lists: limit defaults to and is capped at
        ``api.page_max_limit``."""
        cap = int(self.config["api"].get("page_max_limit", 200))
        out = []
        for name, default in (("offset", 0), ("limit", cap)):
            raw = self.get_query_argument(name, None)
            try:
                value = default if raw is None else int(raw)
            except ValueError:
                raise APIError(400, f"{name} must be an integer, not {raw!r}") from None
            if value < (0 if name == "offset" else 1):
                raise APIError(400, f"{name} must be >= {0 if name == 'offset' else 1}")
            out.append(value)
        return out[0], min(out[1], cap)

    def json_object(self, required: bool = True) -> dict:
        body = self.json_body(required)
        if not isinstance(body, dict):
            raise APIError(400, f"request body must be a JSON object, not {type(body).__name__}")
        return body

    # --- responses ---------------------------------------------------------------------
    def success(self, message: str | None = None, data: Any = _MISSING, status: int = 200, **extra) -> None:
        body: dict = {"status": "success"}
        if message is not None:
            body["message"] = message
        body.update(extra)
        if data is not _MISSING:
            body["data"] = data
        self.set_status(status)
        self.server_timing()
        self.finish(dumps(body))

    def server_timing(self) -> None:
        """``Server-Timing: db;dur=..., app;dur=...``: database time vs ours (read by the benchmark)."""
        total = (time.perf_counter() - self._t0) * 1000
        self.set_header("Server-Timing", f"db;dur={self.db_seconds * 1000:.2f}, total;dur={total:.2f}")

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict = {}
        if isinstance(exc, APIError):
            message = exc.message
            extra = exc.extra
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.reason or self._reason
        else:
            message = self._reason
        if status_code == 401:
            message = "Unauthorized"
        if getattr(self, "_unread_body", False):
            self.set_header("Connection", "close")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": "error", "message": message, **extra}))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        base = tornado.web.RequestHandler
        return [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
                if getattr(cls, m.lower(), None) is not getattr(base, m.lower(), None)]

    def _handle_request_exception(self, e: BaseException) -> None:
        """Map every exception to a 4xx/5xx JSON error; log unexpected ones with their traceback."""
        if self._finished:
            return
        status = None
        if isinstance(e, APIError):
            status = e.status
        elif isinstance(e, tornado.web.HTTPError):
            status = e.status_code
        elif isinstance(e, (*QueryTimeout, TimeoutError)):
            e = APIError(400, "ExecutionTimeout: the query exceeded its time limit (kwargs.max_time_ms); "
                              "narrow the query or raise max_time_ms")
            status = 400
        elif isinstance(e, DatabaseUnavailable):
            log.warning("database unavailable: %s", str(e).split(",")[0][:200])
            e = APIError(503, "database unavailable, try again later")
            status = 503
        elif isinstance(e, QueryFailure):
            detail = (e.details or {}).get("errmsg") or str(e).split(", full error")[0]
            e = APIError(400, f"OperationFailure: {detail}")
            status = 400
        elif isinstance(e, DatabaseError):
            e = APIError(400, f"{e.__class__.__name__}: {str(e).split(', full error')[0][:300]}")
            status = 400
        elif isinstance(e, (RecursionError,)):
            e = APIError(400, "request nested too deeply")
            status = 400
        elif isinstance(e, (BSONError, OverflowError)):
            e = APIError(400, f"{e.__class__.__name__}: {str(e)[:300]}")
            status = 400
        if status is None:
            log.error("unexpected error in %s %s", self.request.method, self.request.path, exc_info=e)
            self.send_error(500, exc_info=(type(e), e, e.__traceback__))
            return
        if status >= 500:
            log.warning("%s %s -> %s %s", self.request.method, self.request.path, status, e)
        self.send_error(status, exc_info=(type(e), e, e.__traceback__))

    def log_exception(self, typ, value, tb) -> None:  # our own mapping logs what matters
        pass

    def _uncount(self) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.state.inflight -= 1

    def on_connection_close(self) -> None:
        self._uncount()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._uncount()
        elapsed = time.perf_counter() - self._t0
        access_log.info("%s %s %s %d %.1fms db=%.1fms", self.username or "-", self.request.method,
                        self.request.path, self.get_status(), elapsed * 1000, self.db_seconds * 1000)


class NotFoundHandler(BaseHandler):
    """Unknown routes: 404 ``{"status": "error", "message": "Not Found"}``.

    Answered from the methods, after the request is read: answering from prepare() would make
    tornado drop the keep-alive connection under the client's feet."""

    async def _not_found(self, *args, **kwargs):
        raise APIError(404, "Not Found")

    get = post = put = patch = delete = head = options = _not_found
