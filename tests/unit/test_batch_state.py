"""The batch state machine: every allowed transition passes with an audit record, every other one is refused.

The expected tables are written out here on purpose (not derived from the module), so a change to the machine
has to be made twice: in the code and in this specification.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from shared.db.batch_state import (
    ALLOWED,
    ON_PLC,
    BatchState,
    HistoryStatus,
    IllegalTransition,
    archive_status,
    transition,
)

S = BatchState
MO = "WH/MO/00011"

# from -> to, for every state but attention (whose exits depend on where the batch came from).
FORWARD = """
queued    -> written cancelled attention
written   -> accepted running finished failed attention
accepted  -> running finished failed attention
running   -> finished failed attention
finished  -> reported attention
failed    -> cancelled attention
reported  -> attention
cancelled ->
"""
# attention_from -> allowed exits of attention ("-" = unknown origin).
ATTENTION = """
queued    -> queued cancelled
written   -> written failed cancelled
accepted  -> accepted failed cancelled
running   -> running failed cancelled
finished  -> finished cancelled
failed    -> failed cancelled
reported  -> reported
-         -> cancelled
"""


def _table(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in text.strip().splitlines():
        frm, _, rest = line.partition("->")
        out[frm.strip()] = set(rest.split())
    return out


EXPECTED = _table(FORWARD)
EXITS = _table(ATTENTION)
NON_ATTENTION = [s for s in S if s is not S.ATTENTION]


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(NON_ATTENTION, S)), ids=str)
def test_every_pair_from_a_non_attention_state(frm: BatchState, to: BatchState) -> None:
    at = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    if to.value in EXPECTED[frm.value]:
        t = transition(MO, frm.value, to.value, actor="mo_planner", reason="test", at=at, slot=1)
        assert (t.mo_id, t.from_state, t.to_state, t.actor, t.reason, t.at) == (
            MO,
            frm,
            to,
            "mo_planner",
            "test",
            at,
        )
        assert t.detail == {"slot": 1}
        assert t.attention_from == (frm if to is S.ATTENTION else None)
    else:
        with pytest.raises(IllegalTransition, match=f"{frm.value} -> {to.value} is not an allowed"):
            transition(MO, frm.value, to.value, actor="x")


@pytest.mark.parametrize(
    ("origin", "to"), list(itertools.product([*NON_ATTENTION, None], S)), ids=lambda v: str(v or "unknown")
)
def test_every_exit_from_attention_by_origin(origin: BatchState | None, to: BatchState) -> None:
    key = origin.value if origin else "-"
    if key not in EXITS:  # cancelled never enters attention; treat it like any refused origin
        allowed: set[str] = set()
    else:
        allowed = EXITS[key]
    attention_from = origin.value if origin else None
    if to.value in allowed:
        t = transition(MO, "attention", to.value, actor="operator:ana", attention_from=attention_from)
        assert (t.from_state, t.to_state, t.attention_from) == (S.ATTENTION, to, None)
    else:
        with pytest.raises(IllegalTransition):
            transition(MO, "attention", to.value, actor="operator:ana", attention_from=attention_from)


def test_allowed_is_exactly_the_specification() -> None:
    spec = {(S(f), S(t)) for f, tos in EXPECTED.items() for t in tos}
    spec |= {(S.ATTENTION, S(t)) for tos in EXITS.values() for t in tos}
    assert spec == ALLOWED


@pytest.mark.parametrize(("frm", "to"), [("queued", "archived"), ("bogus", "queued"), ("queued", ""), ("", "")])
def test_unknown_states_are_refused(frm: str, to: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(MO, frm, to, actor="x")


def test_unknown_attention_origin_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="unknown state 'bogus'"):
        transition(MO, "attention", "finished", actor="x", attention_from="bogus")


def test_default_timestamp_is_aware_utc_now() -> None:
    before = dt.datetime.now(dt.UTC)
    t = transition(MO, "queued", "written", actor="mo_planner")
    assert before <= t.at <= dt.datetime.now(dt.UTC) and t.at.tzinfo is not None


@pytest.mark.parametrize(
    ("to", "column"),
    [
        ("written", "written_at"),
        ("accepted", "accepted_at"),
        ("running", "started_at"),
        ("finished", "finished_at"),
        ("failed", "failed_at"),
        ("attention", "attention_at"),
    ],
)
def test_each_state_entered_names_its_timestamp_column(to: str, column: str) -> None:
    frm = "written" if to != "written" else "queued"
    assert transition(MO, frm, to, actor="x").timestamp_column == column


def test_timestamps_of_the_ends_and_no_restamp_of_queued() -> None:
    assert transition(MO, "finished", "reported", actor="x").timestamp_column == "reported_at"
    assert transition(MO, "queued", "cancelled", actor="x").timestamp_column == "cancelled_at"
    # Back to the queue from attention keeps queued_at: the batch keeps its place.
    assert transition(MO, "attention", "queued", actor="x", attention_from="queued").timestamp_column is None


@pytest.mark.parametrize("state", list(S), ids=str)
def test_archive_status(state: BatchState) -> None:
    expected = {"reported": "completed", "cancelled": "cancelled", "failed": "failed"}.get(state.value)
    if expected:
        assert archive_status(MO, state.value) is HistoryStatus(expected)
    else:
        with pytest.raises(IllegalTransition, match="only reported, cancelled or failed"):
            archive_status(MO, state.value)


def _reachable(start: BatchState) -> set[BatchState]:
    """Every state reachable from `start` through the real transition function, tracking attention_from."""
    seen: set[tuple[BatchState, BatchState | None]] = set()
    todo: list[tuple[BatchState, BatchState | None]] = [(start, None)]
    while todo:
        state, origin = todo.pop()
        if (state, origin) in seen:
            continue
        seen.add((state, origin))
        for to in S:
            try:
                t = transition(MO, state.value, to.value, actor="x", attention_from=origin and origin.value)
            except IllegalTransition:
                continue
            todo.append((to, t.attention_from))
    return {s for s, _ in seen}


@pytest.mark.parametrize("ended", [S.FINISHED, S.FAILED, S.REPORTED, S.CANCELLED], ids=str)
def test_an_ended_batch_never_goes_back_to_the_plc(ended: BatchState) -> None:
    """No sequence of transitions leads an ended batch to queued/written/...: it can never be dosed twice."""
    assert not _reachable(ended) & (ON_PLC | {S.QUEUED})


def test_a_reported_batch_can_only_end_as_completed() -> None:
    """The consumption is in Odoo: whatever an operator does, it is archived as completed."""
    archivable = {s for s in _reachable(S.REPORTED) if s in (S.REPORTED, S.CANCELLED, S.FAILED)}
    assert archivable == {S.REPORTED}


def test_a_batch_refused_at_queueing_never_counts_as_dosed() -> None:
    assert _reachable(S.QUEUED) >= {S.WRITTEN}  # the normal path exists
    # Through attention alone (gateway refused the payload) it can only go back to the queue or be cancelled.
    t = transition(MO, "queued", "attention", actor="mo_planner")
    for to in (S.FINISHED, S.REPORTED, S.RUNNING, S.FAILED):
        with pytest.raises(IllegalTransition):
            transition(MO, "attention", to.value, actor="x", attention_from=t.attention_from)


def test_cancelled_is_terminal() -> None:
    assert _reachable(S.CANCELLED) == {S.CANCELLED}


def test_error_names_the_mo_and_the_states() -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(MO, "written", "queued", actor="x")
    assert (info.value.mo_id, info.value.current, info.value.target) == (MO, "written", "queued")
    assert str(info.value).startswith("WH/MO/00011: written -> queued")
