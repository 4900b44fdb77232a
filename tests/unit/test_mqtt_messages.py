"""The typed messages (shared/mqtt/wire.py, snapshots.py, events.py): the wire format they produce, and what a
receiver refuses (strict types, consistent verdicts, a real read time)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest

from services.plc_gateway.publisher import snapshot_message
from shared.mqtt.events import BatchEvent, FailureEvent
from shared.mqtt.payloads import PayloadError
from shared.mqtt.snapshots import FailureSnapshot, ReadSlotSnapshot, WriteSlotSnapshot
from shared.mqtt.wire import parse_message
from shared.plc.snapshot import Snapshot
from tests.support.messages import MAP, failure_area, failure_words, read_slot, write_slot

AT = dt.datetime(2026, 12, 2, 8, 15, 30, 123456, tzinfo=dt.UTC)


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_an_event_carries_only_the_details_that_apply() -> None:
    queued = BatchEvent(ts=AT, source="mo_planner", event="queued", mo_id="WH/MO/00014", warnings=[])
    assert queued.wire() == {
        "schema": 1,
        "ts": "2026-12-02T08:15:30.123Z",
        "source": "mo_planner",
        "event": "queued",
        "mo_id": "WH/MO/00014",
        "slot": None,  # always sent, null when the event names no slot
        "warnings": [],
    }
    assert parse_message(BatchEvent, queued.to_json()) == queued.model_copy(
        update={"ts": AT.replace(microsecond=123000)}
    )
    retry = FailureEvent(ts=AT, source="console", event="retry", event_id="00ff")
    assert set(retry.wire()) == {"schema", "ts", "source", "event", "event_id"}


@pytest.mark.parametrize(
    "broken",
    [
        {"event": "exploded"},
        {"slot": "1"},
        {"mo_id": 14},
        {"ts": "2026-12-02T08:15:30"},  # no timezone: not a UTC time
        {"ts": "yesterday"},
    ],
)
def test_an_event_that_does_not_fit_is_refused(broken: dict[str, Any]) -> None:
    good = BatchEvent(ts=AT, source="odoo_sync", event="archived", mo_id="WH/MO/00014", status="completed")
    with pytest.raises(PayloadError) as refused:
        parse_message(BatchEvent, raw(good.wire() | broken))
    assert refused.value.code == "invalid_payload" and str(refused.value)


def test_unknown_keys_are_ignored_a_missing_one_is_not() -> None:
    body = read_slot("WH/MO/00011", kg={"silo101": 2.5}).wire()
    assert parse_message(ReadSlotSnapshot, raw(body | {"added_later": 1})).valid
    for key in ("ts", "source", "seq", "heartbeat", "valid", "empty", "errors", "fields", "words"):
        with pytest.raises(PayloadError, match=key):
            parse_message(ReadSlotSnapshot, raw({k: v for k, v in body.items() if k != key}))


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("status_read_data", True),  # a bool is not a flag
        ("status_read_data", 2),
        ("status_manufacturing", "1"),  # a string is not a number
        ("weight_finished_good", -1.0),
        ("quantity", float("inf")),
        ("mo_id", ""),
        ("batch", 3),  # names another slot than the snapshot's
    ],
)
def test_a_read_snapshot_with_a_bad_value_is_refused(where: str, value: Any) -> None:
    body = read_slot("WH/MO/00011", kg={"silo101": 2.5}).wire()
    body["fields"][where] = value
    with pytest.raises(PayloadError):
        parse_message(ReadSlotSnapshot, json.dumps(body, allow_nan=True).encode())


def test_a_verdict_that_contradicts_the_fields_is_refused() -> None:
    full = read_slot("WH/MO/00011").wire()
    empty = read_slot(None, r=1).wire()
    for body in (
        full | {"empty": True},  # empty, yet a batch
        empty | {"empty": False},  # a batch, yet only the flag
        full | {"valid": False, "errors": ["x"]},  # invalid, yet fields
        full | {"errors": ["x"]},  # valid, yet reasons
        empty | {"valid": False, "fields": {}, "errors": []},  # invalid without a reason
    ):
        with pytest.raises(PayloadError):
            parse_message(ReadSlotSnapshot, raw(body))


def test_failure_pending_and_event_id_must_agree_with_the_area() -> None:
    words = failure_words("silo105", "MOTOR_OVERLOAD")
    pending = failure_area(words)
    assert pending.pending and pending.failure is not None and pending.event_id == pending.failure.event_id
    assert "unreportable" not in pending.wire()["fields"]  # present only when it applies
    taken = list(words)
    taken[MAP.layout_of("failure").flag_offset] = 1
    assert not failure_area(taken).pending and failure_area(taken).event_id is None
    for broken in (
        pending.wire() | {"pending": False},
        pending.wire() | {"event_id": "abcd"},
        failure_area(taken).wire() | {"pending": True, "event_id": pending.event_id},
    ):
        with pytest.raises(PayloadError):
            parse_message(FailureSnapshot, raw(broken))
    odd = failure_area(failure_words("mixer01", "JAM"))
    assert odd.failure is not None and odd.failure.unreportable and "unreportable" in odd.wire()["fields"]


def test_a_decoded_area_that_does_not_fit_its_message_is_published_as_invalid() -> None:
    """A decoder bug must not put a message on the wire that every receiver refuses on its own."""
    words = [0] * MAP.layout_of("read_slot").words
    broken = Snapshot("read_slot", 1, tuple(words), True, False, (), {"mo_id": "WH/MO/00011"})
    built = snapshot_message(broken, 3, False, "plc_gateway")
    assert not built.valid and built.errors[0].startswith("decoded fields do not fit the read_slot message: ")
    assert parse_message(ReadSlotSnapshot, built.to_json()).errors == built.errors


def test_a_refused_slot_snapshot_is_logged_and_held_as_invalid(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.receiver")
    other_slot = write_slot("WH/MO/00011", slot=2).to_json()
    with caplog.at_level(logging.WARNING, logger="test.receiver"):
        held = WriteSlotSnapshot.received(other_slot, 1, "mo_planner", log)
    assert not held.valid and held.slot == 1 and held.source == "mo_planner"
    assert held.errors == ["malformed snapshot: slot 2 on the topic of slot 1"]
    assert [r.getMessage() for r in caplog.records] == ["snapshot refused"]
    assert caplog.records[0].reason == "slot 2 on the topic of slot 1"  # type: ignore[attr-defined]
