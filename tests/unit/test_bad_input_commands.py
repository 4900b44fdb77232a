"""Bad input at the gateway's edge, without a broker: every payload either parses into a strict command or is
refused with a PayloadError (never another exception, never repaired); the gateway never writes outside the
memory map; no MQTT command can name an arbitrary address."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.plc_gateway import handshake
from services.plc_gateway.app import command_table
from services.plc_gateway.handshake import WriteNotAllowed, guarded_write
from services.plc_gateway.weighing_journal import WeighingJournal
from shared.mqtt.payloads import MAX_COMMAND_BYTES, AckSlot, CommandBase, PayloadError, WriteBatch, parse_command
from shared.mqtt.topics import COMMAND_SENDERS
from shared.plc.memory_map import load_memory_map, with_active_slots

MAP = with_active_slots(load_memory_map(), 10)
RANGES = MAP.writable_ranges()

# Parsing only: the journal of a table nobody runs stays empty.
COMMANDS = command_table(WeighingJournal(Path(tempfile.mkdtemp(prefix="journal-"))))


class RecordingIO:
    def __init__(self) -> None:
        self.writes: list[tuple[int, list[int]]] = []

    async def read_words(self, address: int, count: int) -> list[int]:
        return [0] * count

    async def read_multiple(self, addresses: Sequence[int]) -> list[int]:
        return [0] * len(addresses)

    async def write_words(self, address: int, words: Sequence[int]) -> None:
        self.writes.append((address, list(words)))


def _inside(address: int, count: int) -> bool:
    return any(first <= address and address + count <= first + n for first, n in RANGES)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(address=st.integers(0, 32767), count=st.integers(1, 200))
def test_guarded_write_refuses_everything_outside_the_writable_ranges(address: int, count: int) -> None:
    io = RecordingIO()
    words = [0] * count
    if _inside(address, count):
        asyncio.run(guarded_write(io, MAP, address, words))
        assert io.writes == [(address, words)]
    else:
        with pytest.raises(WriteNotAllowed):
            asyncio.run(guarded_write(io, MAP, address, words))
        assert io.writes == [], "a refused write reached the PLC"


@pytest.mark.parametrize("address", [0, 6000, 6075, 7077, 8021, 8023, 9999, 32767])
def test_known_forbidden_addresses(address: int) -> None:
    """The READ area's data words, the failure data, and unmapped memory are never written by the gateway."""
    io = RecordingIO()
    if _inside(address, 1):
        pytest.skip(f"D{address} is writable in this map")
    with pytest.raises(WriteNotAllowed):
        asyncio.run(guarded_write(io, MAP, address, [1]))
    assert io.writes == []


def test_writable_ranges_are_only_write_blocks_and_flags() -> None:
    """Writable = each WRITE slot block, the READ flags, the failure flag and the ten weighing item flags."""
    allowed: set[int] = set()
    for first, n in RANGES:
        allowed.update(range(first, first + n))
    expected: set[int] = {MAP.flag_address("failure")}
    expected.update(MAP.item_flag_address("manual_weighing", k) for k in range(1, 11))
    for slot in range(1, 11):
        base = MAP.base_address("write_slot", slot)
        expected.update(range(base, base + MAP.layout_of("write_slot").words))
        expected.add(MAP.flag_address("read_slot", slot))
    assert allowed == expected


def test_no_command_writes_an_arbitrary_address() -> None:
    """The gateway's one table names every command COMMAND_SENDERS lets anyone send, each under its own name."""
    assert (
        set(COMMANDS)
        == set(COMMAND_SENDERS)
        == {"write_batch", "ack_slot", "ack_failure", "ack_weighing", "arm", "read_area"}
    )
    for name, spec in COMMANDS.items():
        model = spec.model
        assert model.command == name
        fields = set(model.model_fields)
        assert not fields & {"address", "words", "count", "offset", "data"}, (name, fields)
        assert model.model_config.get("extra") == "forbid", name
        with pytest.raises(PayloadError):  # extra fields are refused, not ignored
            parse_command(
                model, json.dumps({"request_id": "r1", "slot": 1, "address": 7000, "words": [1]}).encode()
            )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
FIELD_NAMES = ["request_id", "slot", "mo_id", "event_id", "area", "batch", "reply_to", "expires_at", "targets"]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(COMMANDS)), doc=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values))
def test_fuzzed_command_documents_parse_strictly_or_are_refused(name: str, doc: dict[str, Any]) -> None:
    raw = json.dumps(doc).encode()
    try:
        cmd, _run = COMMANDS[name].parse(raw)
    except PayloadError as exc:
        assert exc.code in ("invalid_payload", "too_large") and str(exc)
        return
    assert isinstance(cmd, CommandBase)
    assert set(doc) <= set(type(cmd).model_fields) | {"schema"}


@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(raw: bytes) -> None:
    for spec in COMMANDS.values():
        with contextlib.suppress(PayloadError):
            spec.parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",
        b'{"request_id": "r", "slot": 1, "mo_id": "WH/MO/1"',
        b"[1, 2, 3]",
        b'{"request_id": "r", "slot": NaN, "mo_id": "X"}',
        b'{"request_id": "r", "slot": "1", "mo_id": "X"}',
        b'{"request_id": "r", "slot": true, "mo_id": "X"}',
        b'{"request_id": "r", "slot": 1.0, "mo_id": "X"}',
        b'{"request_id": "r; DROP TABLE mo_batch", "slot": 1, "mo_id": "X"}',
        b'{"request_id": "r", "slot": 1, "mo_id": "X", "reply_to": "a/#"}',
        b'{"request_id": "r", "slot": 1, "mo_id": "' + b"A" * 17 + b'"}',
        b'{"request_id": "r", "slot": 1, "mo_id": "X", "nested": {"a": [[[[]]]]}}',
        b'{"request_id": "r", "slot": 1, "mo_id": "X", "x": "' + b"A" * MAX_COMMAND_BYTES + b'"}',
    ],
)
def test_malformed_ack_slot_payloads_are_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(PayloadError) as err:
        parse_command(AckSlot, raw)
    assert err.value.code in ("invalid_payload", "too_large") and str(err.value)


def test_write_batch_with_unencodable_text_is_refused_before_any_plc_io() -> None:
    """An MO name that passes the payload model but not the PLC's ASCII codec: invalid_payload, no I/O."""
    io = RecordingIO()
    doc = {
        "request_id": "r1",
        "slot": 1,
        "batch": {"mo_id": "WH/MO/é'--", "bom_name": "x", "finished_goods": "y", "quantity": 10.0, "targets": {}},
    }
    cmd = parse_command(WriteBatch, json.dumps(doc).encode())
    reply = asyncio.run(handshake.write_batch(io, MAP, cmd))
    assert not reply.ok and reply.code == "invalid_payload", reply
    assert io.writes == []
