"""The production broker configuration, proven with a real Mosquitto and real paho clients.

One private broker runs the repo's mosquitto/mosquitto.conf (listener, persistence paths and auth file paths
rewritten for the test), a password file written by mosquitto/make_passwd.py and the repo's mosquitto/acl.

Mosquitto drops a denied PUBLISH from an MQTT 3.1.1 client silently (the client even gets its PUBACK), so a
denial is observed on the receiving side: the forbidden message is followed by an allowed "control" message
from the same connection. The broker handles one connection's messages in order, so once the control message
has arrived the forbidden one can no longer be on its way; a short grace period covers the delivery path.
"""

from __future__ import annotations

import os
import pwd
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.support.servers import Broker, start_mosquitto

REPO = Path(__file__).resolve().parents[2]
MOSQ = REPO / "mosquitto"
USERS = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor", "operator", "console", "viewer")
TIMEOUT = 5.0
GRACE = 0.1  # after the control message; the ordering argument (assert_denied) makes it a mere safety margin


# ---------------------------------------------------------------- broker with the production auth config


def _broker_config_lines() -> str:
    """mosquitto.conf minus what the test harness sets itself (listener, anonymous, paths)."""
    dropped = ("listener", "allow_anonymous", "password_file", "acl_file", "persistence_location", "include_dir")
    keep = []
    for line in (MOSQ / "mosquitto.conf").read_text().splitlines():
        word = line.split("#", 1)[0].split()
        if word and word[0] not in dropped:
            keep.append(line)
    return "\n".join(keep)


class AuthBroker:
    def __init__(self, broker: Broker, passwords: dict[str, str]) -> None:
        self.broker = broker
        self.passwords = passwords


@pytest.fixture(scope="module")
def auth_broker() -> Iterator[AuthBroker]:
    # mkdtemp is 0700: when the tests run as root, Mosquitto drops to its own user and must still reach the
    # files, exactly like the eclipse-mosquitto container reads files owned by uid 1883.
    workdir = Path(tempfile.mkdtemp(prefix="mosq-acl-"))
    workdir.chmod(0o755)
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(mode=0o700)
    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    for user, password in passwords.items():
        (secrets_dir / f"mqtt_{user}").write_text(password + "\n")
    owner: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam("mosquitto")
        owner = ["--owner", f"{entry.pw_uid}:{entry.pw_gid}"]
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    done = subprocess.run(
        [sys.executable, str(MOSQ / "make_passwd.py"), "--out", str(workdir / "passwd"), "--secrets-dir",
         str(secrets_dir), *owner],
        capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for password in passwords.values():
        assert password not in done.stdout + done.stderr
    acl = workdir / "acl"
    shutil.copy(MOSQ / "acl", acl)
    if owner:
        os.chown(acl, *map(int, owner[1].split(":")))
    acl.chmod(0o600)
    extra = f"{_broker_config_lines()}\npassword_file {workdir / 'passwd'}\nacl_file {acl}\n"
    broker = start_mosquitto(extra_config=extra, anonymous=False, workdir=workdir)
    try:
        yield AuthBroker(broker, passwords)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- paho helpers


class Client:
    """A connected paho client (MQTT 3.1.1 unless asked) collecting what it receives."""

    def __init__(
        self,
        ab: AuthBroker,
        user: str | None,
        password: str | None = None,
        *,
        will: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv311,
    ) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.pubacks: dict[int, Any] = {}
        self._puback_event = threading.Condition()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{uuid.uuid4().hex[:6]}", protocol=protocol
        )
        if user is not None:
            self.c.username_pw_set(user, password if password is not None else ab.passwords[user])
        if will:
            self.c.will_set(will, b'{"state":"offline"}', qos=1, retain=False)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(list(rcs))
        self.c.on_publish = self._on_publish
        self.c.connect(ab.broker.host, ab.broker.port, keepalive=30)
        self.c.loop_start()
        self.rc = self.connack.get(timeout=TIMEOUT)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._puback_event:
            self.pubacks[mid] = rc
            self._puback_event.notify_all()

    @property
    def accepted(self) -> bool:
        return bool(self.rc == 0)

    def subscribe(self, topic: str) -> list[Any]:
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, body: str = "{}") -> Any:
        """Publish QoS 1 and wait for the PUBACK; returns its reason code."""
        info = self.c.publish(topic, body.encode(), qos=1)
        with self._puback_event:
            assert self._puback_event.wait_for(lambda: info.mid in self.pubacks, TIMEOUT), f"no PUBACK for {topic}"
            return self.pubacks[info.mid]

    def received(self, timeout: float) -> list[tuple[str, bytes]]:
        out = []
        try:
            msg = self.messages.get(timeout=timeout)
            out.append((msg.topic, bytes(msg.payload)))
            while True:
                msg = self.messages.get(timeout=GRACE)
                out.append((msg.topic, bytes(msg.payload)))
        except queue.Empty:
            return out

    def wait_for(self, topic: str, body: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including (topic, body), then during GRACE."""
        seen: list[tuple[str, bytes]] = []
        while (topic, body) not in seen:
            try:
                msg = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"control message {topic} {body!r} never arrived; got {seen}") from None
            seen.append((msg.topic, bytes(msg.payload)))
        seen.extend(self.received(GRACE))
        return seen

    def crash(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the will (if allowed)."""
        self.c.loop_stop()
        sock = self.c.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(auth_broker: AuthBroker) -> Iterator[Any]:
    opened: list[Client] = []

    def make(user: str | None, password: str | None = None, **kw: Any) -> Client:
        client = Client(auth_broker, user, password, **kw)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def root() -> str:
    """A fresh line root per test (scada/<line>): retained messages of one test cannot leak into another."""
    return f"scada/t{uuid.uuid4().hex[:8]}"


def assert_denied(
    publisher: Client, topic: str, subscriber: Client, control_topic: str, control_publisher: Client | None = None
) -> None:
    """`publisher` publishes to `topic` (must be dropped), then `control_publisher` (default: the same client)
    to `control_topic` (must arrive). Mosquitto routes a QoS 1 message to its subscribers before it sends the
    PUBACK, and `publish` waits for that PUBACK: a forbidden message that got through would be queued for the
    subscriber ahead of the control message, even when another client sends the control."""
    tag = uuid.uuid4().hex.encode()
    publisher.publish(topic, f'{{"forbidden":"{tag.decode()}"}}')
    (control_publisher or publisher).publish(control_topic, f'{{"control":"{tag.decode()}"}}')
    seen = subscriber.wait_for(control_topic, f'{{"control":"{tag.decode()}"}}'.encode())
    assert not [t for t, b in seen if tag in b and b.startswith(b'{"forbidden"')], f"{topic} was delivered"


def assert_delivered(publisher: Client, topic: str, subscriber: Client) -> None:
    body = f'{{"ok":"{uuid.uuid4().hex}"}}'
    publisher.publish(topic, body)
    subscriber.wait_for(topic, body.encode())


# ---------------------------------------------------------------- authentication


def test_anonymous_wrong_password_and_unknown_user_are_refused(auth_broker: AuthBroker, clients: Any) -> None:
    assert not clients(None).accepted
    assert not clients("plc_gateway", "not-the-password").accepted
    assert not clients("intruder", "whatever").accepted
    # ... while the right password gets in, for every user of the password file
    for user in USERS:
        assert clients(user).accepted, user


def test_each_service_may_set_its_own_will_but_not_anothers(root: str, clients: Any) -> None:
    assert clients("plc_gateway", will=f"{root}/gateway/status").accepted
    for service in ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor"):
        assert clients(service, will=f"{root}/svc/{service}/status").accepted, service
    # Mosquitto 2.0 accepts a will on a forbidden topic at CONNECT, but checks it like any publish when it
    # fires: a service dying with the gateway's status as its will cannot fake "gateway offline".
    viewer = clients("viewer")
    viewer.subscribe(f"{root}/gateway/status")
    viewer.subscribe(f"{root}/svc/+/status")
    impostor = clients("mo_planner", will=f"{root}/gateway/status")
    honest = clients("odoo_sync", will=f"{root}/svc/odoo_sync/status")
    impostor.crash()
    time.sleep(GRACE)
    honest.crash()
    seen = viewer.wait_for(f"{root}/svc/odoo_sync/status", b'{"state":"offline"}')
    assert f"{root}/gateway/status" not in [t for t, _ in seen]


# ---------------------------------------------------------------- commands


def test_planner_commands_reach_the_gateway_and_replies_come_back(root: str, clients: Any) -> None:
    gateway, planner = clients("plc_gateway"), clients("mo_planner")
    gateway.subscribe(f"{root}/cmd/#")
    planner.subscribe(f"{root}/cmd/+/reply")
    planner.subscribe(f"{root}/reply/#")
    assert_delivered(planner, f"{root}/cmd/write_batch", gateway)
    assert_delivered(planner, f"{root}/cmd/ack_slot", gateway)
    assert_delivered(gateway, f"{root}/reply/mo_planner/abc", planner)
    assert_delivered(gateway, f"{root}/reply/mo_planner", planner)


def test_each_service_reads_only_its_own_replies(root: str, clients: Any) -> None:
    """Replies are bound to their sender: the planner never sees the operator's or failure_monitor's replies
    (so a read_area reply can never be steered onto it), and vice versa."""
    gateway, planner, monitor = clients("plc_gateway"), clients("mo_planner"), clients("failure_monitor")
    for c in (planner, monitor):
        c.subscribe(f"{root}/cmd/+/reply")
        c.subscribe(f"{root}/reply/#")
    for topic in ("reply/edgectl/x", "reply/failure_monitor/x", "cmd/read_area/reply"):
        assert_denied(gateway, f"{root}/{topic}", planner, f"{root}/reply/mo_planner/ctl")
    for topic in ("reply/edgectl/x", "reply/mo_planner/x", "cmd/ack_failure/reply"):
        assert_denied(gateway, f"{root}/{topic}", monitor, f"{root}/reply/failure_monitor/ctl")


def test_failure_monitor_cannot_write_batches(root: str, clients: Any) -> None:
    gateway, monitor = clients("plc_gateway"), clients("failure_monitor")
    gateway.subscribe(f"{root}/cmd/#")
    assert_denied(monitor, f"{root}/cmd/write_batch", gateway, control_topic=f"{root}/cmd/ack_failure")
    assert_denied(monitor, f"{root}/cmd/ack_slot", gateway, control_topic=f"{root}/cmd/ack_failure")
    assert_denied(monitor, f"{root}/cmd/arm", gateway, control_topic=f"{root}/cmd/ack_failure")


def test_only_failure_monitor_acks_failures(root: str, clients: Any) -> None:
    gateway, planner = clients("plc_gateway"), clients("mo_planner")
    gateway.subscribe(f"{root}/cmd/#")
    assert_denied(planner, f"{root}/cmd/ack_failure", gateway, control_topic=f"{root}/cmd/write_batch")


def test_only_failure_monitor_acks_weighings(root: str, clients: Any) -> None:
    gateway, planner, operator, monitor = (
        clients("plc_gateway"),
        clients("mo_planner"),
        clients("operator"),
        clients("failure_monitor"),
    )
    gateway.subscribe(f"{root}/cmd/#")
    assert_delivered(monitor, f"{root}/cmd/ack_weighing", gateway)
    assert_denied(planner, f"{root}/cmd/ack_weighing", gateway, control_topic=f"{root}/cmd/write_batch")
    assert_denied(operator, f"{root}/cmd/ack_weighing", gateway, control_topic=f"{root}/cmd/arm")


def test_operator_may_arm_and_read_areas_but_not_write_batches(root: str, clients: Any) -> None:
    gateway, operator = clients("plc_gateway"), clients("operator")
    gateway.subscribe(f"{root}/cmd/#")
    assert_delivered(operator, f"{root}/cmd/arm", gateway)
    assert_delivered(operator, f"{root}/cmd/read_area", gateway)
    assert_denied(operator, f"{root}/cmd/write_batch", gateway, control_topic=f"{root}/cmd/arm")
    assert_denied(operator, f"{root}/cmd/ack_slot", gateway, control_topic=f"{root}/cmd/arm")
    assert_denied(operator, f"{root}/cmd/ack_failure", gateway, control_topic=f"{root}/cmd/arm")


def test_console_may_arm_and_wake_services_but_not_command_batches(root: str, clients: Any) -> None:
    gateway, console, planner = clients("plc_gateway"), clients("console"), clients("mo_planner")
    gateway.subscribe(f"{root}/cmd/#")
    assert_delivered(console, f"{root}/cmd/arm", gateway)
    for command in ("write_batch", "ack_slot", "ack_failure", "read_area"):
        assert_denied(console, f"{root}/cmd/{command}", gateway, control_topic=f"{root}/cmd/arm")
    planner.subscribe(f"{root}/events/batch")
    assert_delivered(console, f"{root}/events/batch", planner)
    monitor = clients("failure_monitor")
    monitor.subscribe(f"{root}/events/weighing")
    assert_delivered(console, f"{root}/events/weighing", monitor)  # the wake-up after a weighing retry
    # Its replies are its own: it never reads the planner's (nor the planner its).
    console.subscribe(f"{root}/reply/#")
    assert_denied(gateway, f"{root}/reply/mo_planner/x", console, f"{root}/reply/console/ctl")
    planner.subscribe(f"{root}/reply/#")
    assert_denied(gateway, f"{root}/reply/console/x", planner, f"{root}/reply/mo_planner/ctl")


def test_only_the_gateway_answers_commands(root: str, clients: Any) -> None:
    planner, operator = clients("mo_planner"), clients("operator")
    planner.subscribe(f"{root}/reply/#")
    gateway = clients("plc_gateway")
    for topic in ("reply/mo_planner/x", "reply/mo_planner"):
        ctl = f"{root}/reply/mo_planner/ctl"
        assert_denied(operator, f"{root}/{topic}", planner, ctl, control_publisher=gateway)
        assert_denied(planner, f"{root}/{topic}", planner, ctl, control_publisher=gateway)


# ---------------------------------------------------------------- PLC snapshots, status, events


def test_only_the_gateway_publishes_plc_snapshots(root: str, clients: Any) -> None:
    gateway, viewer = clients("plc_gateway"), clients("viewer")
    viewer.subscribe(f"{root}/#")
    assert_delivered(gateway, f"{root}/plc/read/1", viewer)
    assert_delivered(gateway, f"{root}/plc/failure", viewer)
    assert_delivered(gateway, f"{root}/gateway/status", viewer)
    for user in ("mo_planner", "odoo_sync", "failure_monitor", "operator"):
        other = clients(user)
        control = f"{root}/svc/{user}/status" if user != "operator" else f"{root}/cmd/arm"
        assert_denied(other, f"{root}/plc/read/1", viewer, control_topic=control)
        assert_denied(other, f"{root}/plc/write/1", viewer, control_topic=control)
        assert_denied(other, f"{root}/gateway/status", viewer, control_topic=control)


def test_services_publish_only_their_own_status(root: str, clients: Any) -> None:
    viewer = clients("viewer")
    viewer.subscribe(f"{root}/svc/#")
    planner = clients("mo_planner")
    assert_denied(planner, f"{root}/svc/odoo_sync/status", viewer, control_topic=f"{root}/svc/mo_planner/status")
    assert_denied(planner, f"{root}/svc/plc_gateway/status", viewer, control_topic=f"{root}/svc/mo_planner/status")
    assert_delivered(clients("plc_gateway"), f"{root}/svc/plc_gateway/status", viewer)


def test_batch_events_come_from_planner_sync_and_operator_only(root: str, clients: Any) -> None:
    sync, monitor = clients("odoo_sync"), clients("failure_monitor")
    sync.subscribe(f"{root}/events/batch")
    monitor.subscribe(f"{root}/events/batch")
    planner = clients("mo_planner")
    assert_delivered(planner, f"{root}/events/batch", sync)
    assert_delivered(sync, f"{root}/events/batch", monitor)
    assert_delivered(clients("operator"), f"{root}/events/batch", sync)  # edgectl retry wakes odoo_sync
    assert_denied(monitor, f"{root}/events/batch", sync, f"{root}/events/batch", control_publisher=planner)
    for user in ("plc_gateway",):
        assert_denied(
            clients(user), f"{root}/events/batch", sync, f"{root}/events/batch", control_publisher=planner
        )


def test_plc_alarms_come_from_the_gateway_only(root: str, clients: Any) -> None:
    """{root}/events/gateway (PLC mode and clock alarms): the gateway writes it, the operator reads it."""
    gateway, operator = clients("plc_gateway"), clients("operator")
    operator.subscribe(f"{root}/events/gateway")
    assert_delivered(gateway, f"{root}/events/gateway", operator)
    for user in ("mo_planner", "odoo_sync", "failure_monitor", "operator"):
        assert_denied(
            clients(user), f"{root}/events/gateway", operator, f"{root}/events/gateway", control_publisher=gateway
        )


def test_services_read_what_they_need_and_not_commands(root: str, clients: Any) -> None:
    gateway = clients("plc_gateway")
    planner, sync = clients("mo_planner"), clients("odoo_sync")
    # Subscribing to everything is allowed, but only readable topics are delivered.
    planner.subscribe(f"{root}/#")
    sync.subscribe(f"{root}/#")
    assert_delivered(gateway, f"{root}/plc/read/1", planner)
    assert_delivered(gateway, f"{root}/plc/read/1", sync)
    operator = clients("operator")
    # odoo_sync and mo_planner do not see other clients' commands (only the gateway consumes them).
    body = b'{"secret":"command"}'
    operator.publish(f"{root}/cmd/arm", body.decode())
    assert_delivered(gateway, f"{root}/plc/read/2", planner)
    assert_delivered(gateway, f"{root}/plc/read/2", sync)
    assert (f"{root}/cmd/arm", body) not in planner.received(GRACE) + sync.received(GRACE)


def test_viewer_reads_everything_but_writes_nothing(root: str, clients: Any) -> None:
    viewer, gateway, operator = clients("viewer"), clients("plc_gateway"), clients("operator")
    viewer.subscribe(f"{root}/#")
    assert_delivered(gateway, f"{root}/plc/read/1", viewer)
    assert_delivered(operator, f"{root}/cmd/arm", viewer)
    watcher = clients("operator")  # reads everything
    watcher.subscribe(f"{root}/#")
    for topic in ("cmd/arm", "cmd/write_batch", "plc/read/1", "svc/viewer/status", "events/batch", "reply/x"):
        assert_denied(viewer, f"{root}/{topic}", watcher, f"{root}/cmd/arm", control_publisher=operator)


def test_viewer_and_operator_read_broker_statistics(clients: Any) -> None:
    for user in ("viewer", "operator"):
        c = clients(user)
        c.subscribe("$SYS/broker/version")  # retained, so delivered at once
        got = c.received(TIMEOUT)
        assert got and got[0][0] == "$SYS/broker/version", user
    planner = clients("mo_planner")
    planner.subscribe("$SYS/broker/version")
    assert planner.received(0.5) == []


def test_roots_outside_scada_get_no_access(clients: Any) -> None:
    root = f"plant{uuid.uuid4().hex[:6]}/plc01"
    viewer, gateway = clients("viewer"), clients("plc_gateway")
    viewer.subscribe(f"{root}/#")
    viewer.subscribe("scada/+/plc/read/1")
    tag = uuid.uuid4().hex
    gateway.publish(f"{root}/plc/read/1", f'{{"t":"{tag}"}}')
    gateway.publish(f"scada/{tag[:8]}/plc/read/1", f'{{"t":"{tag}"}}')
    seen = viewer.wait_for(f"scada/{tag[:8]}/plc/read/1", f'{{"t":"{tag}"}}'.encode())
    assert all(not t.startswith(root) for t, _ in seen)


def test_mqtt5_clients_get_not_authorized_in_the_puback(root: str, clients: Any) -> None:
    monitor = clients("failure_monitor", protocol=mqtt.MQTTv5)
    assert monitor.accepted
    assert monitor.publish(f"{root}/cmd/write_batch") == 0x87  # Not authorized
    assert monitor.publish(f"{root}/cmd/ack_failure") < 0x80  # success (0x10: no subscribers yet)


# ---------------------------------------------------------------- the compose healthcheck speaks to this broker


def test_compose_mosquitto_healthcheck_detects_a_live_broker(auth_broker: AuthBroker) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    # compose turns $$ into $; the container's broker listens on 1883, ours on a free port
    command = re.sub(r"\b1883\b", str(auth_broker.broker.port), test[1].replace("$$", "$"))
    assert subprocess.run(["sh", "-c", command], timeout=15, check=False).returncode == 0
    dead = re.sub(r"\b1883\b", "1", test[1].replace("$$", "$"))
    assert subprocess.run(["sh", "-c", dead], timeout=15, check=False).returncode != 0
