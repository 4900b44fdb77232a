"""Fuzzed snapshots into the planner's rules: whatever arrives on plc/read|write, the shape check either
passes a well-formed snapshot or names the problem, and the rules never raise on what passes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.mo_planner.rules import Action, on_read_snapshot, on_write_snapshot, slot_free, snapshot_problem

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
@given(msg=snapshots, area=st.sampled_from(["read", "write"]))
def test_rules_never_raise_on_snapshots_that_pass_the_shape_check(msg: dict[str, Any], area: str) -> None:
    problem = snapshot_problem(msg, 1, area)
    if problem is not None:
        assert isinstance(problem, str) and problem
        return
    if area == "read":
        decision = on_read_snapshot(msg, None, fingerprint=None)
        if msg["valid"] and not msg["empty"]:
            assert decision.action is Action.ALARM  # a batch the database does not expect
    else:
        on_write_snapshot(msg, None)
    slot_free(msg, msg, occupied_in_db=False)


def test_valid_claim_without_fields_is_a_problem() -> None:
    assert snapshot_problem({"valid": True, "empty": False, "slot": 1, "errors": []}, 1, "read")
    assert snapshot_problem({"valid": True, "empty": False, "slot": 2, "errors": [], "fields": {}}, 1, "read")
    assert snapshot_problem({"valid": False, "errors": 5}, 1, "read")
    assert snapshot_problem({"valid": "true"}, 1, "write")
