"""plc_gateway as a real process between a real Mosquitto and plc-sim over UDP, checked from outside:
an independent MQTT client for what it publishes, our FINS client (another node) for what is in PLC memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.fins.client import FinsClient
from shared.mqtt.status import ServiceStatus
from shared.plc.fingerprint import result_fingerprint
from shared.plc.memory_map import load_memory_map
from shared.plc.snapshot import BatchCommand, decode_area, encode_batch_command
from tests.support.procs import Proc, Watcher, console, wait_until
from tests.support.servers import Broker, free_port

ROOT = "scada/test"
MAP = load_memory_map()


class Plant:
    """plc-sim + plc_gateway + a watcher on one private broker."""

    def __init__(
        self, broker: Broker, tmp: Path, sim_args: list[str], poll_ms: int = 100, env: dict[str, str] | None = None
    ) -> None:
        self.broker = broker
        self.sim_port = free_port(2)  # SOCK_DGRAM
        self.control_port = free_port()
        self.health_port = free_port()
        self.sim = Proc(
            "plc-sim",
            [
                console("plc-sim"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.sim_port),
                "--control-port",
                str(self.control_port),
                "--node",
                "1",
                "--seed",
                "7",
                *sim_args,
            ],
            {},
            tmp / "sim.log",
        ).start()
        wait_until(self._sim_ready, 30, what="plc-sim control port")
        self.gateway_env = {
            "MQTT_URL": broker.url,
            "MQTT_TOPIC_ROOT": ROOT,
            "PLC_HOST": "127.0.0.1",
            "PLC_PORT": str(self.sim_port),
            "PLC_NODE": "1",
            "GATEWAY_NODE": "10",
            "GATEWAY_STATE_DIR": str(tmp / "gateway-state"),
            "POLL_INTERVAL_MS": str(poll_ms),
            "HEALTH_PORT": str(self.health_port),
            "HEARTBEAT_S": "2",
            "FINS_TIMEOUT_MS": "200",
            "MQTT_CLIENT_ID": "gw-test",
            **(env or {}),
        }
        self.watch = Watcher(broker.host, broker.port, f"{ROOT}/#")
        self.gateway = self.start_gateway(tmp)

    def start_gateway(self, tmp: Path) -> Proc:
        gw = Proc("gateway", [console("plc-gateway")], self.gateway_env, tmp / "gateway.log").start()
        self.watch.wait_for(lambda t, b: t == f"{ROOT}/gateway/status" and b.get("state") == "online", 15)
        return gw

    def _sim_ready(self) -> bool:
        try:
            self.control("GET", "/state")
            return True
        except OSError:
            return False

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def fins_read(self, address: int, count: int) -> list[int]:
        """Read PLC memory as another FINS node (SA1 = 99): checks memory without trusting the gateway."""

        async def go() -> list[int]:
            async with FinsClient(
                host="127.0.0.1", port=self.sim_port, dest_node=1, source_node=99, timeout=0.5, retries=5
            ) as c:
                return await c.read_words(address, count)

        return asyncio.run(go())

    def fins_write(self, address: int, words: list[int]) -> None:
        async def go() -> None:
            async with FinsClient(host="127.0.0.1", port=self.sim_port, dest_node=1, source_node=99) as c:
                await c.write_words(address, words)

        asyncio.run(go())

    def memory(self) -> dict[str, list[int]]:
        return {
            "read": self.fins_read(MAP.base_address("read_slot", 1), 77),
            "write": self.fins_read(MAP.base_address("write_slot", 1), 77),
            "failure": self.fins_read(MAP.base_address("failure"), 23),
        }

    def fingerprint(self, slot: int = 1) -> str:
        """What the planner names in ack_slot: the fingerprint of the READ slot's words it stored."""
        layout = MAP.layout_of("read_slot")
        return result_fingerprint(
            self.fins_read(MAP.base_address("read_slot", slot), layout.words), layout.flag_offset
        )

    def cmd(self, name: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        return self.watch.request(f"{ROOT}/cmd/{name}", body, timeout)

    def stop(self) -> None:
        self.gateway.terminate()
        self.sim.terminate()
        self.watch.stop()


@pytest.fixture
def plant(broker: Broker, tmp_path: Path) -> Iterator[Plant]:
    p = Plant(broker, tmp_path, ["--batch-seconds", "1.5", "--noise", "0.3"])
    yield p
    p.stop()


def batch(mo: str = "WH/MO/00014", **targets: float) -> dict[str, Any]:
    return {
        "mo_id": mo,
        "bom_name": "JF PLUS KUR",
        "finished_goods": "JF PLUS KUR",
        "quantity": 1000.0,
        "targets": targets or {"silo101": 41.6, "silo102": 160.0, "lq114": 40.0},
    }


def test_retained_snapshots_match_plc_memory(plant: Plant) -> None:
    for topic in (f"{ROOT}/plc/read/1", f"{ROOT}/plc/write/1", f"{ROOT}/plc/failure"):
        plant.watch.wait_for(lambda t, b, topic=topic: t == topic, 10)
    mem = plant.memory()
    latest = plant.watch.latest
    assert latest[f"{ROOT}/plc/write/1"]["words"] == mem["write"]
    assert latest[f"{ROOT}/plc/read/1"]["words"] == mem["read"]
    assert latest[f"{ROOT}/plc/failure"]["words"] == mem["failure"]
    snap = latest[f"{ROOT}/plc/write/1"]
    assert snap["schema"] == 1 and snap["source"] == "plc_gateway" and snap["valid"] is True
    assert snap["fields"]["status_read_data"] == 1  # the simulator starts armed
    # A late joiner gets them too (retained).
    late = Watcher(plant.broker.host, plant.broker.port, f"{ROOT}/plc/#")
    try:
        late.wait_for(lambda t, b: t == f"{ROOT}/plc/write/1", 5)
    finally:
        late.stop()
    status = latest[f"{ROOT}/gateway/status"]
    assert status["state"] == "online" and status["map_version"] == MAP.version
    typed = ServiceStatus.model_validate_json(json.dumps(status))  # what the console and edgectl read
    assert typed.plc is not None and typed.plc.host == "127.0.0.1" and typed.slots == MAP.active_slots


def test_write_batch_lands_exactly_and_is_never_written_twice(plant: Plant) -> None:
    reply = plant.cmd("write_batch", {"request_id": "w-1", "slot": 1, "batch": batch()})
    assert reply["ok"] and reply["code"] == "written", reply
    expected = encode_batch_command(
        MAP,
        1,
        BatchCommand(
            "WH/MO/00014", "JF PLUS KUR", "JF PLUS KUR", 1000.0, {"silo101": 41.6, "silo102": 160.0, "lq114": 40.0}
        ),
    )
    written = plant.fins_read(MAP.base_address("write_slot", 1), 77)
    assert written[:76] == expected[:76] and written[76] in (0, 1)
    wait_until(lambda: plant.control("GET", "/state")["slots"][0]["batches_started"] == 1, 5, what="latch")

    # The same request again: cached reply, no PLC write.
    again = plant.cmd("write_batch", {"request_id": "w-1", "slot": 1, "batch": batch()})
    assert again["ok"] and again.get("duplicate") is True
    # Another request for the next MO while the first is still dosing: refused, nothing written.
    busy = plant.cmd("write_batch", {"request_id": "w-2", "slot": 1, "batch": batch("WH/MO/00015")})
    assert not busy["ok"] and busy["code"] == "slot_busy", busy
    assert plant.fins_read(MAP.base_address("write_slot", 1), 77)[:76] == expected[:76]

    # Finish, ack, then the next MO is accepted.
    plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/plc/read/1" and b["fields"].get("status_manufacturing") == 1, 10
    )
    stored = plant.fingerprint()
    early = plant.cmd("ack_slot", {"request_id": "a-0", "slot": 1, "mo_id": "WH/MO/00099", "fingerprint": stored})
    assert not early["ok"] and early["code"] == "mismatch"
    assert plant.fins_read(MAP.flag_address("read_slot", 1), 1) == [0]
    ack = plant.cmd("ack_slot", {"request_id": "a-1", "slot": 1, "mo_id": "WH/MO/00014", "fingerprint": stored})
    assert ack["ok"] and ack["code"] == "acked", ack
    assert plant.fins_read(MAP.flag_address("read_slot", 1), 1) == [1]
    assert (
        plant.cmd("ack_slot", {"request_id": "a-2", "slot": 1, "mo_id": "WH/MO/00014", "fingerprint": stored})[
            "code"
        ]
        == "already_acked"
    )
    nxt = plant.cmd("write_batch", {"request_id": "w-3", "slot": 1, "batch": batch("WH/MO/00015")})
    assert nxt["ok"] and nxt["code"] == "written", nxt
    state = plant.control("GET", "/state")
    assert state["slots"][0]["violations"] == 0


def test_ack_slot_refuses_a_running_batch(plant: Plant) -> None:
    assert plant.cmd("write_batch", {"request_id": "w-1", "slot": 1, "batch": batch()})["ok"]
    plant.watch.wait_for(lambda t, b: t == f"{ROOT}/plc/read/1" and b["fields"].get("mo_id") == "WH/MO/00014", 5)
    reply = plant.cmd(
        "ack_slot", {"request_id": "a-1", "slot": 1, "mo_id": "WH/MO/00014", "fingerprint": plant.fingerprint()}
    )
    assert not reply["ok"] and reply["code"] == "not_finished", reply
    assert plant.fins_read(MAP.flag_address("read_slot", 1), 1) == [0]


def test_failure_is_acked_only_with_its_event_id(plant: Plant) -> None:
    plant.control("POST", "/failure", {"equipment": "silo105", "description": "MOTOR_OVERLOAD"})
    _, snap = plant.watch.wait_for(lambda t, b: t == f"{ROOT}/plc/failure" and b.get("pending") is True, 10)
    event_id = snap["event_id"]
    assert snap["fields"]["equipment_code"] == "silo105"
    wrong = plant.cmd("ack_failure", {"request_id": "f-0", "event_id": "0" * 20})
    assert not wrong["ok"] and wrong["code"] == "mismatch"
    assert plant.fins_read(MAP.flag_address("failure"), 1) == [0]
    ok = plant.cmd("ack_failure", {"request_id": "f-1", "event_id": event_id})
    assert ok["ok"] and ok["code"] == "acked"
    assert plant.fins_read(MAP.flag_address("failure"), 1) == [1]


BAD_COMMANDS: list[tuple[str, bytes, str]] = [
    ("write_batch", b"not json", "invalid_payload"),
    ("write_batch", b"[1, 2]", "invalid_payload"),
    ("write_batch", json.dumps({"request_id": "b1", "slot": "1", "batch": batch()}).encode(), "invalid_payload"),
    (
        "write_batch",
        json.dumps({"request_id": "b2", "slot": 1, "batch": {**batch(), "quantity": "1000"}}).encode(),
        "invalid_payload",
    ),
    (
        "write_batch",
        json.dumps({"request_id": "b3", "slot": 1, "batch": batch(silo999=5.0)}).encode(),
        "invalid_payload",
    ),
    (
        "write_batch",
        json.dumps({"request_id": "b4", "slot": 1, "batch": batch(silo101=99999.0)}).encode(),
        "invalid_payload",
    ),
    (
        "write_batch",
        json.dumps({"request_id": "b5", "slot": 1, "batch": {**batch(), "mo_id": "'; DROP TABLE--"}}).encode(),
        "invalid_payload",
    ),
    (
        "write_batch",
        json.dumps({"request_id": "b6", "slot": 1, "batch": batch(), "address": 100}).encode(),
        "invalid_payload",
    ),
    ("write_batch", json.dumps({"request_id": "b7", "slot": 2, "batch": batch()}).encode(), "invalid_payload"),
    (
        "write_batch",
        json.dumps(
            {"request_id": "b8", "slot": 1, "batch": batch(), "expires_at": "2020-01-01T00:00:00Z"}
        ).encode(),
        "expired",
    ),
    ("write_batch", b'{"request_id": "b9", "pad": "' + b"x" * 20000 + b'"}', "too_large"),
    ("ack_slot", json.dumps({"request_id": "b10", "slot": 1}).encode(), "invalid_payload"),
    ("ack_failure", json.dumps({"request_id": "b11", "event_id": "zz"}).encode(), "invalid_payload"),
    ("arm", json.dumps({"request_id": "b12", "slot": True}).encode(), "invalid_payload"),
    ("read_area", json.dumps({"request_id": "b13", "area": "cio", "slot": 1}).encode(), "invalid_payload"),
    (
        "write_batch",
        json.dumps({"request_id": "b14", "slot": 1, "batch": batch(), "reply_to": f"{ROOT}/plc/read/1"}).encode(),
        "invalid_payload",
    ),
]


def test_bad_commands_get_clear_errors_and_change_nothing(plant: Plant) -> None:
    plant.watch.wait_for(lambda t, b: t == f"{ROOT}/plc/write/1", 10)
    before = plant.memory()
    for name, payload, code in BAD_COMMANDS:
        start = plant.watch.mark()
        plant.watch.publish(f"{ROOT}/cmd/{name}", payload)
        _, reply = plant.watch.wait_for(lambda t, b, name=name: t == f"{ROOT}/cmd/{name}/reply", 10, since=start)
        assert reply["ok"] is False and reply["code"] == code, (payload[:80], reply)
        assert reply["message"]
    assert plant.memory() == before
    # The retained snapshot topics were not touched by the rejected reply_to either.
    assert plant.watch.latest[f"{ROOT}/plc/read/1"]["source"] == "plc_gateway"


def test_a_lost_flag_write_reply_never_acknowledges_the_next_failure(plant: Plant) -> None:
    """Issue 10.1: every reply to a memory write is lost. The first F = 1 lands, the PLC takes it and posts
    its next failure; a retransmitted 1 would acknowledge that second event, which nobody stored."""
    plant.control("POST", "/failure", {"equipment": "silo105", "description": "MOTOR_OVERLOAD"})
    plant.control("POST", "/failure", {"equipment": "silo106", "description": "LEVEL_LOW"})
    _, snap = plant.watch.wait_for(lambda t, b: t == f"{ROOT}/plc/failure" and b.get("pending") is True, 10)
    first = snap["event_id"]
    plant.control("POST", "/faults", {"drop_write_reply": 1.0})
    reply = plant.cmd("ack_failure", {"request_id": "f-1", "event_id": first})
    assert reply["ok"] and reply["code"] == "acked", reply
    _, nxt = plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/plc/failure" and b.get("pending") is True and b["event_id"] != first, 10
    )
    time.sleep(1.0)  # time for any retransmission to land
    assert plant.fins_read(MAP.flag_address("failure"), 1) == [0]  # the second event is still waiting
    assert plant.control("GET", "/state")["failures"]["acked"] == 1
    assert nxt["fields"]["equipment_code"] == "silo106"


def test_a_reply_cannot_be_steered_onto_another_senders_topic(plant: Plant) -> None:
    """Issue 10.9: read_area (an operator command) with reply_to on the planner's reply topic is refused."""
    start = plant.watch.mark()
    plant.watch.publish(
        f"{ROOT}/cmd/read_area",
        json.dumps(
            {"request_id": "forged", "area": "read_slot", "slot": 1, "reply_to": f"{ROOT}/reply/mo_planner"}
        ),
    )
    topic, reply = plant.watch.wait_for(
        lambda t, b: b.get("request_id") == "forged" and t.endswith("/reply"), 10, since=start
    )
    assert topic == f"{ROOT}/cmd/read_area/reply"
    assert not reply["ok"] and reply["code"] == "invalid_payload"
    time.sleep(0.5)
    assert not [t for _, t, _, _ in plant.watch.messages[start:] if t.startswith(f"{ROOT}/reply/mo_planner")]
    start = plant.watch.mark()
    own_topic = f"{ROOT}/reply/edgectl/x"
    plant.watch.publish(
        f"{ROOT}/cmd/read_area",
        {"request_id": "own", "area": "read_slot", "slot": 1, "reply_to": own_topic},
    )
    topic, own = plant.watch.wait_for(lambda t, b: b.get("request_id") == "own" and "ok" in b, 10, since=start)
    assert topic == own_topic
    assert own["ok"] and own["command"] == "read_area" and own["args"] == {"area": "read_slot", "slot": 1}


def test_a_chunk_size_below_the_slot_block_is_refused_at_start(plant: Plant, tmp_path: Path) -> None:
    """Issue 10.7: a chunk below the 77-word WRITE slot would split the block the PLC must see whole."""
    env = {**plant.gateway_env, "FINS_CHUNK_WORDS": "50", "HEALTH_PORT": str(free_port())}
    done = subprocess.run(
        [console("plc-gateway")], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "FINS_CHUNK_WORDS=50" in done.stderr and "77 words" in done.stderr


def test_read_area_returns_decoded_memory(plant: Plant) -> None:
    reply = plant.cmd("read_area", {"request_id": "r-1", "area": "write_slot", "slot": 1})
    assert reply["ok"] and reply["words"] == plant.fins_read(MAP.base_address("write_slot", 1), 77)


def test_kill_9_publishes_offline_through_the_will(plant: Plant) -> None:
    start = plant.watch.mark()
    plant.gateway.kill9()
    _, status = plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/gateway/status" and b.get("state") == "offline", 30, since=start
    )
    assert status["source"] == "plc_gateway"


def test_sigterm_publishes_offline_and_exits_cleanly(plant: Plant) -> None:
    start = plant.watch.mark()
    assert plant.gateway.terminate() == 0
    plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/gateway/status" and b.get("state") == "offline", 5, since=start
    )


def test_plc_unreachable_is_visible_and_recovers(plant: Plant, tmp_path: Path) -> None:
    start = plant.watch.mark()
    plant.sim.terminate()
    _, down = plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/gateway/status" and b["plc"]["reachable"] is False, 10, since=start
    )
    assert down["state"] == "online" and down["plc"]["last_error"]
    # Not ready while the PLC is away (503), and /healthz says why (issue 13, defect 6).
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{plant.health_port}/healthz", timeout=5)
    assert refused.value.code == 503
    body = json.loads(refused.value.read())
    assert body["plc_reachable"] is False and body["problems"][0].startswith("plc: unreachable")
    plant.sim = Proc("plc-sim", plant.sim.args, {}, tmp_path / "sim2.log").start()
    plant.watch.wait_for(
        lambda t, b: t == f"{ROOT}/gateway/status" and b["plc"]["reachable"] is True, 15, since=start
    )
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{plant.health_port}/metrics", timeout=5).read().decode()
    assert "gateway_poll_errors_total" in metrics and "gateway_polls_total" in metrics


def test_keeps_polling_through_a_broker_restart(plant: Plant) -> None:
    plant.watch.wait_for(lambda t, b: t == f"{ROOT}/plc/write/1", 10)
    plant.watch.stop()
    plant.broker.restart()
    plant.watch = Watcher(plant.broker.host, plant.broker.port, f"{ROOT}/#")
    plant.watch.wait_for(lambda t, b: t == f"{ROOT}/gateway/status" and b.get("state") == "online", 30)
    # Commands work again after the reconnect (subscriptions restored in on_connect).
    reply = plant.cmd("read_area", {"request_id": "after-restart", "area": "failure"}, timeout=15)
    assert reply["ok"]


def test_lossy_udp_never_yields_wrong_data_or_double_writes(broker: Broker, tmp_path: Path) -> None:
    p = Plant(
        broker,
        tmp_path,
        ["--batch-seconds", "0.8", "--drop", "0.2", "--duplicate", "0.1", "--wrong-sid", "0.1"],
        poll_ms=50,
        # About a third of all datagrams go astray: reads (always safe to repeat) get enough attempts. Writes
        # are never repeated by FINS; the gateway decides on a fresh read.
        env={"FINS_RETRIES": "6"},
    )
    try:
        done = 0
        for i in range(3):
            mo = f"WH/MO/0010{i}"
            reply = p.cmd("write_batch", {"request_id": f"lossy-{i}", "slot": 1, "batch": batch(mo)}, timeout=20)
            assert reply["ok"], (reply["code"], reply["message"])
            p.watch.wait_for(
                lambda t, b, mo=mo: (
                    t == f"{ROOT}/plc/read/1"
                    and b["fields"].get("mo_id") == mo
                    and b["fields"].get("status_manufacturing") == 1
                ),
                20,
            )
            ack = p.cmd(
                "ack_slot",
                {"request_id": f"lossy-ack-{i}", "slot": 1, "mo_id": mo, "fingerprint": p.fingerprint()},
                timeout=20,
            )
            assert ack["ok"], (ack["code"], ack["message"])
            wait_until(lambda: p.fins_read(MAP.flag_address("write_slot", 1), 1) == [1], 10, what="W=1")
            done += 1
        state = p.control("GET", "/state")["slots"][0]
        assert state["batches_started"] == done and state["violations"] == 0
        # Every snapshot the gateway published decodes to exactly what it claims.
        for _, topic, body, _ in list(p.watch.messages):
            if body and topic.startswith(f"{ROOT}/plc/") and "words" in body:
                area = body["area"]  # every snapshot names its area (plc/weighing included)
                again = decode_area(MAP, area, body["slot"], body["words"])
                assert again.valid is body["valid"] and again.fields == body["fields"]
                assert body["valid"], body[
                    "errors"
                ]  # the simulator never holds garbage: nothing invalid may appear
    finally:
        p.stop()
