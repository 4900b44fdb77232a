"""The simulator's control API: small JSON over HTTP on localhost, served from a thread.

GET  /state                      slots (phase, mo_id, counters), failures, weighings, FINS counters, faults, mode
GET  /memory?address=D6000&count=77
POST /failure   {equipment?, description?}   queue an equipment failure (posted once the area is free); absent =
                 random; posted as asked otherwise: a code the map does not list and "" included
POST /weighing  {mo_id, product_id, kg, batch?, item?}  queue a manual weighing (posted into a free item;
                 invalid content is posted as asked; the same content twice = two weighings in a row)
POST /weighing/withdraw {item}               the operator withdraws the weighing still waiting in item (cleared)
POST /faults    {drop, drop_reply, drop_write_reply, duplicate, delay_ms, wrong_sid, end_code, end_code_count,
                 end_code_writes_only, program_mode}
POST /reboot    {armed?: false}              clear all memory (a fresh PLC holds W = 0)
POST /arm                                    W = 1 on every active slot
POST /words     {address, words}             plant words directly (bypasses FINS and the program)
GET  /plc                                    mode, clock, scan statistics (simulators/plc/scan.py)
POST /plc       {mode?, clock_offset_s?, fatal_error?, non_fatal_error?}   the CPU as 0601/0701 report it
Every handler runs on the simulator's event loop (Simulator.run_on_loop), so state stays single-threaded.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from shared.fins.frames import parse_dm_address

if TYPE_CHECKING:
    from simulators.plc.server import Simulator


class BadRequest(ValueError):
    pass


class NotFound(Exception):
    pass


def _address(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_dm_address(value)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    raise BadRequest("address must be an integer or 'D<n>'")


def _words(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(w, int) and not isinstance(w, bool) for w in value):
        raise BadRequest("words must be a list of integers")
    if any(not 0 <= w <= 0xFFFF for w in value):
        raise BadRequest("words must be 0..65535")
    return value


def handle(sim: Simulator, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
    """Runs on the simulator's loop thread."""
    doc = body if isinstance(body, dict) else {}
    match method, path:
        case "GET", "/state":
            return sim.state()
        case "GET", "/memory":
            try:
                address = _address(query.get("address", [""])[0])
                count = int(query.get("count", ["1"])[0])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            try:
                return {"address": address, "count": count, "words": sim.memory.read(address, count)}
            except IndexError as exc:
                raise BadRequest(str(exc)) from None
        case "POST", "/failure":
            try:
                sim.program.trigger_failure(doc.get("equipment"), doc.get("description"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return {"queued": sim.program.failures.queued, "posted": sim.program.failures.posted}
        case "POST", "/weighing":
            try:
                sim.program.weighing.request(doc)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return sim.program.weighing.as_dict()
        case "POST", "/weighing/withdraw":
            try:
                return sim.program.weighing.withdraw(int(doc["item"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise BadRequest(f"withdraw needs the item of a waiting weighing: {exc}") from None
        case "POST", "/faults":
            try:
                sim.faults.update(doc)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            return sim.faults.as_dict()
        case "POST", "/reboot":
            sim.reboot(bool(doc.get("armed", False)))
            return sim.state()
        case "POST", "/arm":
            sim.program.arm()
            return sim.state()
        case "POST", "/words":
            address, words = _address(doc.get("address")), _words(doc.get("words"))
            try:
                sim.write_words(address, words)
            except IndexError as exc:
                raise BadRequest(str(exc)) from None
            return {"ok": True, "address": address, "count": len(words)}
        case "GET", "/plc":
            return sim.plc_state()
        case "POST", "/plc":
            try:
                return sim.set_plc(doc)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
    raise NotFound(f"{method} {path}")


class ControlServer:
    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(sim))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="plc-sim-control", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

        def log_message(self, format: str, *args: Any) -> None:
            return  # tests poll /state often; the simulator logs what matters itself

        def _reply(self, status: int, doc: Any) -> None:
            raw = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            body: Any = None
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    self._reply(400, {"error": "body is not JSON"})
                    return
            query = parse_qs(url.query)
            try:
                result = sim.run_on_loop(lambda: handle(sim, method, url.path, query, body))
            except BadRequest as exc:
                self._reply(400, {"error": str(exc)})
            except NotFound:
                self._reply(404, {"error": f"no such endpoint: {method} {url.path}"})
            else:
                self._reply(200, result)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
