"""The one gateway-command client (shared/mqtt/commands.py): what it sends, when it resends, which reply it
accepts. Replies are built as the gateway builds them (echoed command and arguments)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from services.plc_gateway.app import command_table
from services.plc_gateway.weighing_journal import WeighingJournal
from shared.mqtt.commands import CommandClient
from shared.mqtt.payloads import AckFailure, AckWeighing, Arm, BatchPayload, CommandReply, WriteBatch, command_args
from shared.mqtt.topics import Topics

TOPICS = Topics("scada/t")
STORED_AT = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)

# Parsing only: the journal of a table nobody runs stays empty.
COMMANDS = command_table(WeighingJournal(Path(tempfile.mkdtemp(prefix="journal-"))))


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, body: dict[str, Any]) -> bool:
        self.sent.append((topic, body))
        return True


def reply_to(
    sent: tuple[str, dict[str, Any]], *, ok: bool = True, code: str = "acked", **override: Any
) -> dict[str, Any]:
    """The gateway's reply to a command it received as `sent` (it parses it and echoes its arguments)."""
    topic, body = sent
    name = topic.rsplit("/", 1)[-1]
    cmd, _run = COMMANDS[name].parse(json.dumps(body).encode())
    reply = {
        "schema": 1,
        "ts": "2026-12-02T08:00:00.000Z",
        "source": "plc_gateway",
        "request_id": cmd.request_id,
        "command": name,
        "args": command_args(cmd),
        "ok": ok,
        "code": code,
        "message": "done",
    }
    return {**reply, **override}


def client(wire: Wire, **kw: Any) -> CommandClient:
    return CommandClient(TOPICS, "failure_monitor", wire.publish, ttl_s=30.0, **kw)


def test_send_publishes_the_typed_command_with_its_reply_topic_and_expiry() -> None:
    wire = Wire()
    c = client(wire)
    ack = AckFailure(request_id=c.new_request_id(), event_id="ab12")
    assert c.send(ack, lambda cmd, reply: None)
    [(topic, body)] = wire.sent
    assert topic == "scada/t/cmd/ack_failure"
    assert body["request_id"] == ack.request_id and body["event_id"] == "ab12"
    assert body["reply_to"] == "scada/t/reply/failure_monitor" == c.reply_topic
    assert body["expires_at"].endswith("Z")
    parsed, _run = COMMANDS["ack_failure"].parse(json.dumps(body).encode())
    assert parsed.request_id == ack.request_id and not parsed.expired()


def test_a_sender_may_send_only_its_own_commands() -> None:
    with pytest.raises(ValueError, match="may not send write_batch"):
        client(Wire()).send(
            WriteBatch(
                request_id="r",
                slot=1,
                batch=BatchPayload(mo_id="WH/MO/1", bom_name="b", finished_goods="f", quantity=1.0),
            ),
            lambda cmd, reply: None,
        )


def test_an_unanswered_command_is_resent_with_the_same_request_id_and_a_fresh_expiry() -> None:
    wire = Wire()
    c = client(wire, resend_after_s=0.05)
    ack = AckFailure(request_id=c.new_request_id(), event_id="ab12")
    c.send(ack, lambda cmd, reply: None)
    c.send(ack, lambda cmd, reply: None)  # the same request already in flight: not sent twice
    assert len(wire.sent) == 1
    due = c.resend_overdue()
    assert due is not None and 0 < due <= 0.05 and len(wire.sent) == 1
    time.sleep(0.06)
    assert c.resend_overdue() == pytest.approx(0.05, abs=0.02)
    assert [b["request_id"] for _, b in wire.sent] == [ack.request_id, ack.request_id]
    assert wire.sent[1][1]["expires_at"] >= wire.sent[0][1]["expires_at"]
    assert client(Wire()).resend_overdue() is None  # nothing in flight, no resend period


def test_only_the_reply_that_answers_request_command_and_arguments_settles_it() -> None:
    wire = Wire()
    c = client(wire)
    settled: list[tuple[AckWeighing, CommandReply]] = []
    ack = AckWeighing(request_id=c.new_request_id(), item=3, event_id="ab12", weighing_id=8, stored_at=STORED_AT)
    c.send(ack, lambda cmd, reply: settled.append((cmd, reply)))
    body = wire.sent[0]
    assert not c.on_reply(reply_to(body, request_id="someone-else"))
    assert not c.on_reply(reply_to(body, command="ack_failure"))
    assert not c.on_reply(reply_to(body, args={"item": 4, "event_id": "ab12"}))  # another item: steered
    assert not c.on_reply({"request_id": ack.request_id, "ok": "yes"})  # not a reply at all
    assert settled == [] and c.in_flight(AckWeighing) == [ack]
    assert c.on_reply(reply_to(body, ok=False, code="mismatch", flag=0))
    [(cmd, reply)] = settled
    assert cmd is ack and reply.ok is False and reply.code == "mismatch" and reply.model_extra == {
        "schema": 1, "ts": "2026-12-02T08:00:00.000Z", "source": "plc_gateway", "flag": 0}  # fmt: skip
    assert len(c) == 0 and not c.on_reply(reply_to(body))  # a late duplicate settles nothing


def test_forget_stops_waiting_and_in_flight_filters_by_type() -> None:
    c = client(Wire())
    ack = AckFailure(request_id="r1", event_id="ab")
    weigh = AckWeighing(request_id="r2", item=1, event_id="cd", weighing_id=9, stored_at=STORED_AT)
    c.send(ack, lambda cmd, reply: None)
    c.send(weigh, lambda cmd, reply: None)
    assert c.in_flight(AckFailure) == [ack] and c.in_flight(AckWeighing) == [weigh]
    c.forget("r1")
    c.forget(None)
    assert c.in_flight(AckFailure) == [] and len(c) == 1


def test_call_waits_for_the_answer_or_times_out() -> None:
    wire = Wire()
    cli = CommandClient(TOPICS, "edgectl", wire.publish, ttl_s=5.0, session="s1")
    assert cli.reply_topic == "scada/t/reply/edgectl/s1"
    inbox: list[dict[str, Any]] = []

    def receive(left: float) -> dict[str, Any] | None:
        if not inbox and wire.sent:  # the gateway answers what was sent, after a stray message
            inbox.extend([{"not": "a reply"}, reply_to(wire.sent[-1], code="already_armed")])
        return inbox.pop(0) if inbox else None

    reply = cli.call(Arm(request_id="r1", slot=1), receive, timeout_s=2.0)
    assert reply is not None and reply.code == "already_armed" and len(cli) == 0
    started = time.monotonic()
    assert cli.call(Arm(request_id="r2", slot=1), lambda left: time.sleep(min(left, 0.01)), 0.1) is None
    assert time.monotonic() - started >= 0.1 and len(cli) == 0
