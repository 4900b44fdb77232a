"""Fuzzed snapshots into the planner's rules: whatever arrives on plc/read|write, the receiver gets either a
well-formed snapshot or an invalid one naming the problem (never repaired), and the rules never raise on it.
And the other way round: whatever the PLC holds, the message the gateway builds is one receivers accept."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.mo_planner.rules import Action, on_read_snapshot, on_write_snapshot, slot_free
from services.plc_gateway.publisher import snapshot_message
from shared.mqtt.snapshots import ReadSlotSnapshot, WriteSlotSnapshot
from shared.plc.snapshot import decode_area
from tests.support.messages import MAP, batch_words, read_slot

scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3)
)
field_docs = st.fixed_dictionaries(
    {},
    optional={
        "mo_id": values | st.just("WH/MO/00001"),
        "status_manufacturing": values | st.sampled_from([0, 1]),
        "status_operation": values | st.sampled_from([0, 1]),
        "status_read_data": values | st.sampled_from([0, 1]),
        "consumption": values | st.dictionaries(st.sampled_from(["silo101", "lq114"]), st.floats(0, 1e4)),
        "weight_finished_good": values | st.floats(0, 1e4),
    },
)
snapshots = st.fixed_dictionaries(
    {},
    optional={
        "valid": values | st.booleans(),
        "empty": values | st.booleans(),
        "slot": values | st.just(1),
        "errors": values | st.lists(st.text(max_size=5), max_size=2),
        "fields": values | field_docs,
        "words": values | st.lists(st.integers(0, 0xFFFF), max_size=4),
    },
)


@settings(max_examples=600)
@given(body=snapshots)
def test_rules_never_raise_on_whatever_arrives(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    read = ReadSlotSnapshot.received(raw, 1, "mo_planner")
    write = WriteSlotSnapshot.received(raw, 1, "mo_planner")
    decision = on_read_snapshot(read, None, fingerprint=None)
    if not read.valid:
        assert decision.action is Action.ALARM and read.errors  # refused or invalid: alarmed with a reason
    on_write_snapshot(write, None)
    slot_free(write, read, occupied_in_db=False)


def test_a_valid_claim_without_its_content_is_refused() -> None:
    genuine = read_slot("WH/MO/00011", kg={"silo101": 3.0}).wire()
    for broken in (
        genuine | {"fields": {}},  # valid, not empty, no fields
        genuine | {"slot": 2},  # names another slot than its topic
        genuine | {"valid": "true"},
        genuine | {"errors": 5},
        genuine | {"fields": genuine["fields"] | {"status_manufacturing": "1"}},
        genuine | {"fields": genuine["fields"] | {"consumption": {"silo101": -1.0}}},
        {k: v for k, v in genuine.items() if k != "ts"},  # no read time: never evidence of anything
    ):
        snap = ReadSlotSnapshot.received(json.dumps(broken).encode(), 1, "mo_planner")
        assert not snap.valid and snap.errors[0].startswith("malformed snapshot: "), broken
    assert ReadSlotSnapshot.received(json.dumps(genuine).encode(), 1, "mo_planner").valid


@settings(max_examples=300)
@given(
    words=st.lists(st.integers(0, 0xFFFF), min_size=77, max_size=77),
    patch=st.lists(st.tuples(st.integers(0, 76), st.integers(0, 0xFFFF)), max_size=3),
    area=st.sampled_from(["read_slot", "write_slot"]),
)
def test_every_message_the_gateway_builds_is_accepted(words: list[int], patch: list[Any], area: Any) -> None:
    """Random memory, and real batches with a few words changed: the gateway never publishes a message its
    receivers would refuse (the decoder and the message model agree)."""
    real = batch_words(area, 1, "WH/MO/00011", kg={"silo101": 12.5}, mfg=1, weight=12.5, flag=1)
    for at, word in patch:
        real[at] = word
    for block in (words, real):
        snap = decode_area(MAP, area, 1, block)
        built = snapshot_message(snap, 1, False, "plc_gateway")
        assert built.valid == snap.valid and built.errors == list(snap.errors)
        model = ReadSlotSnapshot if area == "read_slot" else WriteSlotSnapshot
        assert model.received(json.dumps(built.wire()).encode(), 1, "mo_planner").wire() == built.wire()
