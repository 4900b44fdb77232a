"""The batch state machine, as pure code (no SQL, no clock unless asked). Services call `transition()` and apply
the result: the new state, the per-state timestamp and one audit_event row, in one transaction (see repo.move).

A row lives in `mo_batch` from `queued` until it is archived: moved, in one transaction, to `mo_histories`
with the status `archive_status()` gives (reported -> completed, cancelled -> cancelled, failed -> failed).
"Archived" is therefore not a state of a row; it is the row leaving the table.

| from      | to        | when (who)                                                                            |
|-----------|-----------|---------------------------------------------------------------------------------------|
| queued    | written   | the gateway replied `ok` to write_batch: the slot holds it, W = 0 (mo_planner)        |
| queued    | cancelled | cancelled before it reached the PLC: operator, or the MO was cancelled in Odoo        |
| queued    | attention | the gateway refused the payload (`invalid_payload`): nothing was written              |
| written   | accepted  | the WRITE snapshot shows W = 1: the PLC copied the batch (mo_planner)                 |
| written   | running   | the READ snapshot shows it dosing (the W = 1 snapshot fell between two polls)         |
| written   | finished  | the READ snapshot shows it finished (a very short batch between two polls)            |
| written   | failed    | the READ snapshot shows status_operation = 1                                          |
| written   | attention | the PLC lost it (reboot, slot overwritten at the HMI): an operator decides            |
| accepted  | running   | the READ snapshot shows it dosing                                                     |
| accepted  | finished  | finished between two polls                                                            |
| accepted  | failed    | status_operation = 1                                                                  |
| accepted  | attention | lost on the PLC, as above                                                             |
| running   | finished  | status_manufacturing = 1: final actuals and weight stored, then the slot is acked     |
| running   | failed    | status_operation = 1 before the finish: stored, then acked; Odoo cancel follows       |
| running   | attention | lost on the PLC, as above                                                             |
| finished  | reported  | Odoo confirmed the consumption (odoo_sync; archived as completed, same transaction)   |
| finished  | attention | Odoo refused or applied the update only in part                                       |
| failed    | cancelled | Odoo confirmed the cancel (odoo_sync; archived as cancelled, same transaction)        |
| failed    | attention | Odoo refused the cancel                                                               |
| reported  | attention | the consumption is in Odoo but a follow-up (mark-done) was refused                    |
| attention | <origin>  | operator retry: back to the state the batch came from (see ATTENTION_EXITS)           |
| attention | cancelled | operator gives up (archived as cancelled; a completed archive is impossible)          |
| attention | failed    | operator declares a batch lost on the PLC failed (only from written/accepted/running) |

Deliberately refused (each would double a dose or lose a result):
- anything back to `queued`/`written` once the gateway said `ok` (written -> queued would write the MO twice);
  a `slot_busy` or unknown reply is not a transition at all: the row stays `queued`, and the resend keeps its
  `write_request_id` so the gateway answers a duplicate from its cache instead of writing twice.
- finished/failed/reported -> any PLC state: an ended batch never goes back to the PLC.
- finished -> cancelled directly, or failed -> reported: the Odoo outcome decides, via attention if in doubt.
- self-loops (running -> running): an update of actuals is not a transition and is not audited.
- leaving `attention` for a state other than its origin (a batch refused at queueing can't become `finished`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class BatchState(StrEnum):
    QUEUED = "queued"
    WRITTEN = "written"
    ACCEPTED = "accepted"
    RUNNING = "running"
    FINISHED = "finished"
    REPORTED = "reported"
    CANCELLED = "cancelled"
    FAILED = "failed"
    ATTENTION = "attention"


class HistoryStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


S = BatchState

# States in which a batch occupies its PLC slot (written to it, not yet ended there).
ON_PLC = frozenset({S.WRITTEN, S.ACCEPTED, S.RUNNING})

# Where an operator may send a batch that is in `attention`, by the state it came from (`attention_from`).
ATTENTION_EXITS: Mapping[BatchState, frozenset[BatchState]] = {
    S.QUEUED: frozenset({S.QUEUED, S.CANCELLED}),
    S.WRITTEN: frozenset({S.WRITTEN, S.FAILED, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.ACCEPTED, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    S.FINISHED: frozenset({S.FINISHED, S.CANCELLED}),
    S.FAILED: frozenset({S.FAILED, S.CANCELLED}),
    S.REPORTED: frozenset({S.REPORTED}),  # the consumption is in Odoo: it must end as completed
}

_FORWARD: frozenset[tuple[BatchState, BatchState]] = frozenset(
    {
        (S.QUEUED, S.WRITTEN),
        (S.QUEUED, S.CANCELLED),
        (S.QUEUED, S.ATTENTION),
        (S.WRITTEN, S.ACCEPTED),
        (S.WRITTEN, S.RUNNING),
        (S.WRITTEN, S.FINISHED),
        (S.WRITTEN, S.FAILED),
        (S.WRITTEN, S.ATTENTION),
        (S.ACCEPTED, S.RUNNING),
        (S.ACCEPTED, S.FINISHED),
        (S.ACCEPTED, S.FAILED),
        (S.ACCEPTED, S.ATTENTION),
        (S.RUNNING, S.FINISHED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.ATTENTION),
        (S.FINISHED, S.REPORTED),
        (S.FINISHED, S.ATTENTION),
        (S.FAILED, S.CANCELLED),
        (S.FAILED, S.ATTENTION),
        (S.REPORTED, S.ATTENTION),
    }
)
# Every pair that is allowed for SOME origin of an attention batch (the table above, as data).
ALLOWED: frozenset[tuple[BatchState, BatchState]] = _FORWARD | frozenset(
    (S.ATTENTION, to) for exits in ATTENTION_EXITS.values() for to in exits
)

# The mo_histories status a batch is archived with; other states cannot be archived.
ARCHIVE_STATUS: Mapping[BatchState, HistoryStatus] = {
    S.REPORTED: HistoryStatus.COMPLETED,
    S.CANCELLED: HistoryStatus.CANCELLED,
    S.FAILED: HistoryStatus.FAILED,  # operator archives a failed batch and leaves the MO open in Odoo
}

# The mo_batch column stamped when a batch enters a state. queued_at is the insert time and is kept when an
# operator sends a batch back to the queue from attention, so it keeps its place.
TIMESTAMP_COLUMN: Mapping[BatchState, str] = {
    S.WRITTEN: "written_at",
    S.ACCEPTED: "accepted_at",
    S.RUNNING: "started_at",
    S.FINISHED: "finished_at",
    S.FAILED: "failed_at",
    S.REPORTED: "reported_at",
    S.CANCELLED: "cancelled_at",
    S.ATTENTION: "attention_at",
}


class IllegalTransition(ValueError):
    def __init__(self, mo_id: str, current: str, target: str, why: str = "is not an allowed transition") -> None:
        super().__init__(f"{mo_id}: {current} -> {target} {why}")
        self.mo_id, self.current, self.target = mo_id, current, target


@dataclass(frozen=True)
class Transition:
    """What the shell writes: the new state and one audit_event row (the audit record)."""

    mo_id: str
    from_state: BatchState
    to_state: BatchState
    actor: str
    reason: str
    at: dt.datetime
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def timestamp_column(self) -> str | None:
        return TIMESTAMP_COLUMN.get(self.to_state)

    @property
    def attention_from(self) -> BatchState | None:
        """What mo_batch.attention_from must hold after this transition."""
        return self.from_state if self.to_state is S.ATTENTION else None


def _state(mo_id: str, current: str, target: str, value: str | None) -> BatchState | None:
    if value is None:
        return None
    try:
        return BatchState(value)
    except ValueError:
        raise IllegalTransition(mo_id, current, target, f"names an unknown state {value!r}") from None


def transition(
    mo_id: str,
    current: str,
    target: str,
    *,
    actor: str,
    reason: str = "",
    at: dt.datetime | None = None,
    attention_from: str | None = None,
    **detail: Any,
) -> Transition:
    """Check `current -> target` and return the audit record, or raise IllegalTransition.

    Leaving `attention` needs `attention_from` (the state that entered it); without it only `cancelled` is
    allowed, because that is safe whatever the batch went through.
    """
    frm = _state(mo_id, current, target, current)
    to = _state(mo_id, current, target, target)
    if frm is None or to is None or (frm, to) not in ALLOWED:
        raise IllegalTransition(mo_id, current, target)
    if frm is S.ATTENTION:
        origin = _state(mo_id, current, target, attention_from)
        exits = ATTENTION_EXITS.get(origin, frozenset()) if origin else frozenset({S.CANCELLED})
        if to not in exits:
            raise IllegalTransition(
                mo_id, current, target, f"is not allowed for a batch that came from {attention_from or 'unknown'}"
            )
    return Transition(mo_id, frm, to, actor, reason, at or dt.datetime.now(dt.UTC), dict(detail))


def archive_status(mo_id: str, state: str) -> HistoryStatus:
    """The mo_histories status for archiving a batch in `state`, or IllegalTransition (e.g. `finished`:
    a batch is never archived before Odoo confirmed it)."""
    try:
        return ARCHIVE_STATUS[BatchState(state)]
    except (KeyError, ValueError):
        raise IllegalTransition(
            mo_id, state, "archived", "is not allowed: only reported, cancelled or failed"
        ) from None
