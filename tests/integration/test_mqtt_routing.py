"""MqttLink's declarative routing against a real Mosquitto: each message reaches the handler of its route,
and no handler runs on paho's network thread (it only hands the message over)."""

from __future__ import annotations

import queue
import threading
import uuid

from shared.mqtt.client import Delivery, Message, MqttLink, Route, parse_mqtt_url
from tests.support.procs import Watcher, wait_until
from tests.support.servers import Broker


def test_each_route_gets_its_messages_on_the_owners_thread(broker: Broker) -> None:
    seen: list[tuple[str, str, str]] = []

    def handler(name: str) -> Route:
        def handle(msg: Message) -> None:
            seen.append((name, msg.topic, threading.current_thread().name))

        return Route(f"r/{name}/+", handle)

    inbox: queue.Queue[Delivery] = queue.Queue()
    link = MqttLink(
        address=parse_mqtt_url(broker.url),
        client_id=f"routing-{uuid.uuid4().hex[:6]}",
        status_topic="r/status",
        source="test",
        routes=[handler("a"), handler("b")],
        inbox=inbox,
    )
    sender = Watcher(broker.host, broker.port, "r/status")
    link.start()
    try:
        wait_until(link.connected.is_set, 10, what="link connected")
        wait_until(lambda: bool(sender.latest.get("r/status")), 10, what="birth")  # subscribed before birth
        for topic in ("r/a/1", "r/b/1", "r/c/1", "r/a/2"):  # r/c has no route: dropped
            sender.publish(topic, {"n": topic})
        received = [inbox.get(timeout=10) for _ in range(3)]
        assert seen == [], "a handler ran on paho's thread"
        for delivery in received:
            delivery.run()
        owner = threading.current_thread().name
        assert seen == [("a", "r/a/1", owner), ("b", "r/b/1", owner), ("a", "r/a/2", owner)]
        assert inbox.empty()
    finally:
        link.stop()
        sender.stop()
