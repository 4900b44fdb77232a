"""Run the project's console scripts as real processes in tests, and watch MQTT like an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.plc.scan import SCAN_MS_ENV

BIN = Path(sys.executable).parent


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child
        # The services' own settings never leak in from the test runner's environment; the simulator's scan time
        # does (`PLC_SIM_SCAN_MS=0 ./scripts/test` runs the whole suite against an instant PLC).
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k == SCAN_MS_ENV or not k.startswith(("MQTT_", "PLC_", "ODOO_", "DATABASE_"))
        }
        full_env.update(self.env)
        self.process = subprocess.Popen(self.args, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def console(name: str) -> str:
    return str(BIN / name)


@dataclass
class Watcher:
    """A plain paho client that records every message under a topic filter (the test's independent eye)."""

    host: str
    port: int
    topic: str = "#"
    username: str | None = None
    password: str | None = None
    messages: list[tuple[float, str, dict[str, Any] | None, bool]] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, 1)
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = None
        with self._cond:
            self.messages.append((time.monotonic(), msg.topic, body, bool(msg.retain)))
            if isinstance(body, dict):
                self.latest[msg.topic] = body
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[str, dict[str, Any]], bool], timeout: float = 10.0, since: int = 0
    ) -> tuple[str, dict[str, Any]]:
        """First message (index >= since) whose (topic, body) satisfies predicate."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for _, topic, body, _ in self.messages[since:]:
                    if body is not None and predicate(topic, body):
                        return topic, body
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching message within {timeout}s")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def publish(self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(topic, data, qos=qos).wait_for_publish(5)

    def request(self, topic: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Publish a command and wait for the reply with the same request_id."""
        body.setdefault("request_id", uuid.uuid4().hex)
        start = self.mark()
        self.publish(topic, body)
        _, reply = self.wait_for(
            lambda t, b: t.endswith("/reply") and b.get("request_id") == body["request_id"], timeout, since=start
        )
        return reply

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")
