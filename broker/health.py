"""The broker's HTTP endpoints: /metrics (Prometheus), /healthz and /stats (JSON)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from broker import metrics

log = logging.getLogger("kowalski.broker")


def serve_http(stats: metrics.BrokerStats, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the broker's ``stats`` in a daemon thread; binding first makes a taken port fail at once."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/metrics"):
                body, ctype = metrics.prometheus_text(), metrics.PROMETHEUS_CONTENT_TYPE
                code = 200
            elif self.path.startswith("/healthz"):
                ok = stats.state == "running"
                body = json.dumps({"status": "ok" if ok else stats.state}).encode()
                ctype, code = "application/json", 200 if ok else 503
            elif self.path.startswith("/stats"):
                q = parse_qs(urlsplit(self.path).query)  # ?last=N: latency over the last N alerts only
                last = int(q["last"][0]) if q.get("last", [""])[0].isdigit() else None
                body, ctype, code = json.dumps(stats.snapshot(last)).encode(), "application/json", 200
            else:
                body, ctype, code = b'{"status": "error", "message": "not found"}', "application/json", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="broker-http").start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
