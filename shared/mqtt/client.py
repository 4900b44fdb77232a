"""paho-mqtt wiring shared by every service: URL parsing, birth and last will, subscriptions restored in
`on_connect`, a route (handler) per subscription, and a thread-safe hand-off of received messages (no work is
done inside paho callbacks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shared.config import ConfigError
from shared.mqtt.payloads import dumps
from shared.mqtt.status import ServiceStatus, StatusDetails, StatusState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str, password_override: str | None = None) -> BrokerAddress:
    """`mqtt://user:pass@host:1883` or `mqtts://...` (TLS). Errors never echo the password."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError("MQTT_URL: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError("MQTT_URL: host is missing")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError("MQTT_URL: port is not a number") from None
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = password_override or (urllib.parse.unquote(parts.password) if parts.password else None)
    return BrokerAddress(parts.hostname, port, user, password, tls)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


Handler = Callable[[Message], None]


@dataclass(frozen=True)
class Route:
    """One subscription and the handler of its messages. Filters of one link must not overlap: paho calls
    every callback whose filter matches, so one message would be handled twice."""

    topic: str
    handler: Handler
    qos: int = 1


@dataclass(frozen=True)
class Delivery:
    """A received message with the handler its route names, handed over to the owner's thread."""

    handler: Handler
    message: Message

    def run(self) -> None:
        self.handler(self.message)


@dataclass
class MqttLink:
    """One broker connection of one service.

    Routing is declarative: each Route is a subscription with its handler (paho's `message_callback_add`).
    paho's thread never runs a handler: it only hands a Delivery over, by default into `inbox` (a thread-safe
    queue the owner's thread drains, see shared/service.py), or to `deliver` (an asyncio owner schedules it on
    its loop). `connected` is an Event others may wait on; `on_connected` runs after each (re)connect. The
    link's status (shared/mqtt/status.py) is `online` with `birth` while connected, `offline` as its last will.
    """

    address: BrokerAddress
    client_id: str
    status_topic: str
    source: str
    routes: list[Route] = field(default_factory=list)
    deliver: Callable[[Delivery], None] | None = None
    on_connected: Callable[[], None] | None = None
    birth: StatusDetails = field(default_factory=StatusDetails)
    inbox: queue.Queue[Delivery] = field(default_factory=queue.Queue)
    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        if self.address.username:
            self.client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            self.client.tls_set()
        self.client.will_set(self.status_topic, self._status_bytes("offline"), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        # Bounded RAM queue while offline: state topics are republished after reconnect anyway.
        self.client.max_queued_messages_set(10_000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_unrouted
        for route in self.routes:
            self.client.message_callback_add(route.topic, self._hand_over(route.handler))

    def _status_bytes(self, state: StatusState) -> bytes:
        return ServiceStatus.build(self.source, self.client_id, state, self.birth).to_json()

    # -- paho callbacks (its network thread): bookkeeping and hand-off only

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error(
                "broker refused connection", extra={"broker": self.address.redacted(), "reason": str(reason)}
            )
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # Commands and replies are small: without this, Nagle + delayed ACK add ~40 ms per hop.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for route in self.routes:
            client.subscribe(route.topic, route.qos)
        client.publish(self.status_topic, self._status_bytes("online"), qos=1, retain=True)
        self.connected.set()
        log.info("connected to broker", extra={"broker": self.address.redacted()})
        if self.on_connected:
            self.on_connected()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if self.connected.is_set():
            log.warning("disconnected from broker", extra={"reason": str(reason)})
        self.connected.clear()

    def _hand_over(self, handler: Handler) -> Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]:
        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            delivery = Delivery(handler, Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            (self.deliver or self.inbox.put)(delivery)

        return on_message

    def _on_unrouted(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # A persistent session may still hold messages of a subscription an older version of the service made.
        log.debug("message without a route dropped", extra={"topic": msg.topic})

    # -- API

    def start(self) -> None:
        self.client.connect_async(self.address.host, self.address.port, keepalive=15)
        self.client.loop_start()

    def publish_json(self, topic: str, body: dict[str, Any], *, retain: bool = False, qos: int = 1) -> bool:
        """Publish an enveloped JSON object; False when the broker is not connected (nothing queued)."""
        if not self.connected.is_set():
            return False
        info = self.client.publish(topic, dumps(self.source, body), qos=qos, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_status(self, birth: StatusDetails) -> bool:
        """A new birth (the details changed): kept for the next (re)connect, and published now if connected."""
        self.birth = birth
        if not self.connected.is_set():
            return False
        info = self.client.publish(self.status_topic, self._status_bytes("online"), qos=1, retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self, timeout: float = 3.0) -> None:
        """Graceful: publish `offline` (retained) and wait for it to leave before disconnecting."""
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, self._status_bytes("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError):
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()


def json_object(raw: bytes) -> dict[str, Any] | None:
    """Decode a JSON object from a subscription (snapshots, replies); None when it is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None
