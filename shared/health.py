"""`/healthz` and `/metrics` (Prometheus) on a service's own port, served from a daemon thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthCheck = Callable[[], dict[str, Any]]


def readiness(checks: Mapping[str, str | None], **details: Any) -> dict[str, Any]:
    """A /healthz body from named checks, each None when fine or a short text saying what is wrong.

    `problems` lists "<check>: <what>" so that an operator (`docker inspect`, `edgectl status`) reads the
    cause, not just "unhealthy": broker, database, odoo (the login), plc (the FINS link), loop (stalled).
    """
    problems = [f"{name}: {what}" for name, what in checks.items() if what]
    return {"healthy": not problems, "problems": problems, **details}


class HealthServer:
    """`check()` returns a dict with at least `healthy: bool`; /healthz answers 200 or 503 with it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, check: HealthCheck) -> None:
        self.registry = registry
        self.check = check
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    try:
                        body = outer.check()
                    except Exception as exc:  # a failing check is an unhealthy service, not a crash
                        body = {"healthy": False, "error": type(exc).__name__}
                    self._send(
                        200 if body.get("healthy") else 503,
                        "application/json",
                        json.dumps(body, default=str).encode(),
                    )
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(outer.registry))
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds would drown the service's own logs

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_health_server(
    port: int, registry: CollectorRegistry, check: HealthCheck, host: str = "0.0.0.0"
) -> HealthServer | None:
    """HEALTH_PORT = 0 turns the endpoint off."""
    if port == 0:
        return None
    return HealthServer(host, port, registry, check).start()
