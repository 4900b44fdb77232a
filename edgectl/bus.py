"""A small paho-mqtt session for one CLI invocation: connect, subscribe, collect messages, publish.

Not shared.mqtt.client.MqttLink on purpose: that one is a service's link (birth/LWT on a status topic, persistent
session). The CLI must not publish a status (the operator user may not write svc/#), wants a clean session, and
must fail fast with an exit code when the broker is not there.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgectl.connection import Connection
from edgectl.errors import Refused, Unreachable, UsageError
from shared.mqtt.client import BrokerAddress, json_object
from shared.mqtt.commands import CommandClient
from shared.mqtt.payloads import CommandBase, CommandReply, dumps

SENDER = "edgectl"  # the broker user `operator` sends as edgectl (shared/mqtt/topics.py COMMAND_SENDERS)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() when it arrived


class Bus:
    def __init__(self, address: BrokerAddress, subscriptions: Iterable[str] = (), timeout: float = 5.0) -> None:
        self.address = address
        self.subscriptions = list(dict.fromkeys(subscriptions))
        self.timeout = timeout
        self.inbox: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._refusal: str | None = None
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgectl-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,  # a CLI run leaves nothing behind on the broker
        )
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        if address.tls:
            self.client.tls_set()
        self.client.connect_timeout = timeout
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # -- paho callbacks (network thread): bookkeeping and hand-off only

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
            self._connected.set()
            return
        # Subscribing here restores the subscriptions after an automatic reconnect (watch runs for long).
        with self._lock:
            self._pending_subs.clear()
            if not self.subscriptions:
                self._subscribed.set()
            for topic in self.subscriptions:
                _rc, mid = client.subscribe(topic, qos=1)
                if mid is not None:
                    self._pending_subs.add(mid)
        self._connected.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: Properties | None
    ) -> None:
        if any(code.is_failure for code in codes):
            self._refusal = "the broker refused a subscription (ACL)"
        with self._lock:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._subscribed.clear()

    # -- API

    def __enter__(self) -> Bus:
        where = self.address.redacted()
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=30)
        except OSError as exc:  # refused, no route, timeout (TimeoutError is an OSError)
            raise Unreachable(f"MQTT broker {where} unreachable: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(self.timeout):
            self.close()
            raise Unreachable(f"MQTT broker {where} did not answer CONNECT within {self.timeout:g} s")
        if self._refusal:
            self.close()
            raise UsageError(f"MQTT broker {where} refused the connection: {self._refusal} (check user/password)")
        if not self._subscribed.wait(self.timeout):
            self.close()
            raise Unreachable(f"MQTT broker {where} did not confirm the subscriptions")
        if self._refusal:
            self.close()
            raise Refused(f"MQTT broker {where}: {self._refusal}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def get(self, timeout: float) -> Received | None:
        try:
            return self.inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, waits for the broker's PUBACK. Over MQTT 3.1.1 a publish the ACL denies is still acknowledged
        (and dropped): the broker cannot tell us, so callers say what happens when it does not arrive."""
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise Unreachable(f"publish to {topic} failed: {exc}") from None
        if not info.is_published():
            raise Unreachable(f"the broker did not acknowledge the publish to {topic} within {self.timeout:g} s")

    def publish_json(self, topic: str, body: dict[str, Any]) -> bool:
        self.publish(topic, dumps(SENDER, body))
        return True

    def receive_json(self, timeout: float) -> dict[str, Any] | None:
        msg = self.get(timeout)
        return json_object(msg.payload) if msg else None


def gateway_command(conn: Connection, build: Callable[[str], CommandBase], timeout: float) -> CommandReply:
    """Send the command `build(request_id)` makes to plc_gateway and wait for its reply (shared/mqtt/commands.py
    matches it); raise Unreachable without one. The reply comes on a topic of this run's own."""
    session = uuid.uuid4().hex
    with Bus(conn.broker(), [conn.topics.reply_topic(SENDER, session)], timeout=min(timeout, 5.0)) as bus:
        client = CommandClient(conn.topics, SENDER, bus.publish_json, ttl_s=timeout, session=session)
        command = build(client.new_request_id())
        reply = client.call(command, bus.receive_json, timeout)
    if reply is not None:
        return reply
    # The broker drops a publish the ACL denies without telling an MQTT 3.1.1 client, so "no reply" is also
    # what a wrong broker user looks like: name the user, since only `operator` may send these commands.
    user = conn.broker().username
    hint = (
        f"; broker user {user!r} may not send cmd/{command.command} (mosquitto/acl allows only 'operator':"
        " under docker-compose use `docker-compose run --rm edgectl ...`)"
        if user != "operator"
        else ""
    )
    raise Unreachable(
        f"no reply from plc_gateway to {command.command} within {timeout:g} s (is it running? see `edgectl status`)"
        f"{hint}"
    )
