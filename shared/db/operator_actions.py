"""Operator actions on batches, failure events and manual weighings: the one implementation edgectl and the
console share.

Pure part: `batch_actions()` / `weighing_actions()` say which actions fit a row in a given state and why the
others do not; the console shows only those buttons and both front ends refuse the rest with the same reason.
Shell part: `cancel_batch`, `retry_batch`, `retry_failure`, `retry_weighing`, `acked_weighing`, `give_up_weighing` lock the row
(SELECT ... FOR UPDATE, so they cannot race mo_planner, odoo_sync or failure_monitor), check the same rules, and
change it only with an audit_event row (shared.db.repo `move`, `archive`, `audit`) naming the actor the caller
gives (edgectl: `operator`, the console: `operator:<login>`). The caller owns the transaction and sends the MQTT
wake-up (`ActionResult.wake`) after the commit: a wake-up for a change that was rolled back would be a lie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.batch_state import ON_PLC, BatchState
from shared.db.models import EquipmentFailure, ManualWeighing, MoBatch
from shared.db.repo import archive, archived_statuses, audit, batch_by_mo, move, now

# Origins odoo_sync works on: a retry hands the batch back to it. Batches that went to attention from the PLC
# side (lost on the PLC, refused at queueing) need a decision, not a blind resend.
RETRYABLE_ORIGINS = frozenset({BatchState.FINISHED, BatchState.FAILED, BatchState.REPORTED})

BatchAction = Literal["retry", "cancel"]
BATCH_ACTIONS: tuple[BatchAction, ...] = ("retry", "cancel")
WeighingAction = Literal["weighing_retry", "weighing_acked", "weighing_give_up"]
# A failure event id is a hex hash; an operator may give a prefix, long enough to be unambiguous in practice.
MIN_EVENT_PREFIX = 6


class ActionRefused(Exception):
    """The action does not fit the row's state (or the row is unknown); the message says why, for a person."""


@dataclass(frozen=True)
class ActionResult:
    subject: str  # MO name, failure event id or weighing id
    message: str
    wake: Literal["batch", "failure", "weighing"] | None = None  # which events topic to nudge after the commit
    event_id: str | None = None  # a weighing's content id (its wake-up names both)


def _origin(state: str, attention_from: str | None, status_operation: bool) -> str | None:
    if state != BatchState.ATTENTION:
        return None
    # Rows from before attention_from existed: the PLC's verdict tells which Odoo call was refused.
    return attention_from or ("failed" if status_operation else "finished")


def batch_actions(
    mo_id: str, state: str, attention_from: str | None, status_operation: bool, write_request_id: str | None
) -> Mapping[BatchAction, str | None]:
    """For each batch action: None when allowed, else the reason it is refused (pure, no I/O)."""
    origin = _origin(state, attention_from, status_operation)
    if state != BatchState.ATTENTION:
        retry: str | None = f"{mo_id} is {state}, not attention: nothing to retry"
    elif origin not in RETRYABLE_ORIGINS and origin != BatchState.QUEUED:
        retry = f"{mo_id} went to attention from {origin} (PLC side): retry only resends Odoo reports"
    else:
        retry = None

    cancel: str | None
    if state in ON_PLC:
        cancel = f"{mo_id} is {state} on the PLC: it cannot be cancelled here"
    elif state == BatchState.ATTENTION:
        # The PLC finished it: its result must reach Odoo. Fix the cause in Odoo and retry.
        cancel = (
            f"{mo_id} ended on the PLC ({origin}); retry it instead of cancelling"
            if origin in RETRYABLE_ORIGINS
            else None
        )
    elif state != BatchState.QUEUED:
        cancel = f"{mo_id} is {state}, not queued: only a queued batch can be cancelled"
    elif write_request_id:
        # mo_planner stores the request id before it sends write_batch: the batch may be on the PLC now.
        cancel = f"{mo_id}: a write was already sent ({write_request_id}); it may be on the PLC now: not cancelled"
    else:
        cancel = None
    return {"retry": retry, "cancel": cancel}


def actions_for(row: MoBatch) -> Mapping[BatchAction, str | None]:
    return batch_actions(row.mo_id, row.state, row.attention_from, row.status_operation, row.write_request_id)


def _locked_batch(s: Session, mo_id: str) -> MoBatch:
    row = batch_by_mo(s, mo_id, lock=True)
    if row is None:
        archived = archived_statuses(s, mo_id)
        if archived:
            raise ActionRefused(f"{mo_id} is not in the queue: already archived as {', '.join(sorted(archived))}")
        raise ActionRefused(f"{mo_id} is unknown (not in mo_batch or mo_histories)")
    return row


def cancel_batch(s: Session, mo_id: str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """Cancel a queued batch that was never sent to the PLC, or give up on one in attention that never ended on
    the PLC (e.g. lost by a reboot: never re-dosed). Archived as cancelled; the MO in Odoo is left as it is."""
    row = _locked_batch(s, mo_id)
    refused = actions_for(row)["cancel"]
    if refused:
        raise ActionRefused(refused)
    if row.state == BatchState.ATTENTION:
        was = row.last_error
        move(
            s,
            row,
            BatchState.CANCELLED,
            actor=actor,
            reason=f"given up by the operator ({via})",
            was=was,
            **detail,
        )
        archive(
            s,
            row,
            "cancelled",
            actor=actor,
            note=f"given up by the operator from attention ({was}); Odoo left as it is",
        )
        return ActionResult(mo_id, f"{mo_id}: given up and archived as cancelled (the MO in Odoo is unchanged)")
    move(s, row, BatchState.CANCELLED, actor=actor, reason=f"cancelled by the operator ({via})", via=via, **detail)
    archive(
        s,
        row,
        "cancelled",
        actor=actor,
        note="cancelled by the operator before it reached the PLC; the MO in Odoo was left as it is",
    )
    return ActionResult(
        mo_id, f"{mo_id}: cancelled and archived (the MO in Odoo is unchanged: cancel it there if wanted)"
    )


def retry_batch(s: Session, mo_id: str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """Hand a batch in attention after an Odoo refusal back to odoo_sync: back to the state it came from
    (finished, failed or reported), due now. sync_attempts is kept so the history of attempts stays visible."""
    row = _locked_batch(s, mo_id)
    refused = actions_for(row)["retry"]
    if refused:
        raise ActionRefused(refused)
    origin = _origin(row.state, row.attention_from, row.status_operation)
    assert origin is not None  # batch_actions allowed the retry, so the row is in attention
    previous = row.last_error
    move(s, row, origin, actor=actor, reason=f"operator retry ({via})", via=via, previous_error=previous, **detail)
    row.next_attempt_at = None
    row.last_error = None
    if origin == BatchState.QUEUED:
        # Refused before it reached the PLC (e.g. an MO scaled away from its BoM), fixed in Odoo: back to the
        # queue; mo_planner reads it from Odoo again before writing and parks it again if it is still wrong.
        return ActionResult(mo_id, f"{mo_id}: back to queued; mo_planner re-reads it from Odoo before writing it")
    return ActionResult(mo_id, f"{mo_id}: back to {origin}; odoo_sync reports it again", wake="batch")


def retry_failure(s: Session, event_prefix: str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """Hand a failure event parked for a person back to failure_monitor, which reports it again."""
    if len(event_prefix) < MIN_EVENT_PREFIX:
        raise ActionRefused(f"give at least {MIN_EVENT_PREFIX} hex digits of the event id")
    rows = s.scalars(
        select(EquipmentFailure).where(EquipmentFailure.event_id.startswith(event_prefix)).with_for_update()
    ).all()
    if len(rows) != 1:
        raise ActionRefused(f"{event_prefix}: {len(rows)} failure events match; give a longer prefix")
    row = rows[0]
    if row.attention_reason is None:
        raise ActionRefused(f"{row.event_id} is not in attention (reported: {row.reported_at is not None})")
    audit(
        s,
        actor=actor,
        action="failure_retry",
        event_id=row.event_id,
        previous=row.attention_reason,
        via=via,
        **detail,
    )
    row.attention_reason, row.attention_at, row.next_attempt_at = None, None, None
    return ActionResult(
        row.event_id, f"{row.event_id}: back to failure_monitor; it reports it again", wake="failure"
    )


# ---------------------------------------------------------------- manual weighings


def weighing_actions(
    weighing_id: int,
    attention_reason: str | None,
    reported: bool,
    applied_kg: Decimal | None,
    kg: Decimal,
    acked: bool = True,
) -> Mapping[WeighingAction, str | None]:
    """For each weighing action: None when allowed, else why it is refused (pure, no I/O).

    Retry hands a weighing in attention back to failure_monitor (after the cause was fixed in Odoo); it decides
    an unknown earlier post first and posts only if that post was not applied. Never for a weighing Odoo
    booked, even in part: a re-post would double the booked part. Give up closes a weighing in attention for
    good: the gateway never posts it again, and whatever is missing is booked in Odoo by hand.

    A weighing parked before its acknowledgement (the gateway cannot know whether its flag write landed, and
    the item shows the same content again) needs the answer the scale's log gives: one weighing -> retry (the
    write is taken as lost and sent again); two identical ones -> acked (the PLC took the flag; the item's
    content is stored as the next weighing). Giving it up would leave the item waiting on the PLC."""
    if attention_reason is None:
        refused = f"weighing {weighing_id} is not in attention (reported: {reported})"
        return {"weighing_retry": refused, "weighing_acked": refused, "weighing_give_up": refused}
    if not acked:
        return {
            "weighing_retry": None,
            "weighing_acked": None,
            "weighing_give_up": f"weighing {weighing_id} still waits on the PLC: first decide whether the PLC "
            "took its flag (weighing-acked) or not (weighing-retry)",
        }
    retry = (
        f"weighing {weighing_id} is booked in Odoo ({applied_kg} of {kg} kg): a retry would post it again; "
        "book the rest in Odoo by hand"
        if reported
        else None
    )
    acked_refused = f"weighing {weighing_id} is already acknowledged on the PLC"
    return {"weighing_retry": retry, "weighing_acked": acked_refused, "weighing_give_up": None}


def actions_for_weighing(row: ManualWeighing) -> Mapping[WeighingAction, str | None]:
    return weighing_actions(
        row.id, row.attention_reason, row.reported_at is not None, row.applied_kg, row.kg, row.acked_at is not None
    )


def _locked_weighing(s: Session, weighing_id: int | str) -> ManualWeighing:
    try:
        key = int(weighing_id)
    except ValueError:
        raise ActionRefused(f"weighing {weighing_id!r} is not a weighing id (a number)") from None
    row = s.get(ManualWeighing, key, with_for_update=True)
    if row is None:
        raise ActionRefused(f"weighing {key} does not exist")
    return row


def _begin_weighing_action(
    s: Session, row: ManualWeighing, action: WeighingAction, *, actor: str, via: str, **detail: Any
) -> None:
    """Refuse what the (locked) row's state does not allow, and audit the action before the change."""
    refused = actions_for_weighing(row)[action]
    if refused:
        raise ActionRefused(refused)
    audit(
        s,
        actor=actor,
        action=action,
        mo_id=row.mo_id,
        event_id=row.event_id,
        weighing_id=row.id,
        previous=row.attention_reason,
        via=via,
        **detail,
    )


def retry_weighing(s: Session, weighing_id: int | str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """Hand a weighing in attention, not booked in Odoo, back to failure_monitor, which reports it again; or,
    parked before its acknowledgement, acknowledges it again (its earlier flag write is taken as lost)."""
    row = _locked_weighing(s, weighing_id)
    _begin_weighing_action(s, row, "weighing_retry", actor=actor, via=via, **detail)
    row.attention_reason, row.attention_at, row.next_attempt_at = None, None, None
    message = (
        f"weighing {row.id}: back to failure_monitor; it reports it again (an unknown earlier post first)"
        if row.acked_at is not None
        # ack_code stays outcome_unknown: the next ack says the earlier write is to be taken as lost.
        else f"weighing {row.id}: the earlier flag write is taken as lost; failure_monitor acknowledges it again"
    )
    return ActionResult(str(row.id), message, wake="weighing", event_id=row.event_id)


def acked_weighing(s: Session, weighing_id: int | str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """A weighing parked before its acknowledgement was taken by the PLC after all (the scale shows a second,
    identical weighing): record the acknowledgement; failure_monitor reports it and stores the item's content
    as the next weighing."""
    row = _locked_weighing(s, weighing_id)
    _begin_weighing_action(s, row, "weighing_acked", actor=actor, via=via, code="operator_acked", **detail)
    row.acked_at, row.ack_code = now(), "operator_acked"
    row.attention_reason, row.attention_at, row.next_attempt_at = None, None, None
    return ActionResult(
        str(row.id),
        f"weighing {row.id}: recorded as acknowledged on the PLC; failure_monitor reports it",
        wake="weighing",
        event_id=row.event_id,
    )


def give_up_weighing(s: Session, weighing_id: int | str, *, actor: str, via: str, **detail: Any) -> ActionResult:
    """Close a weighing in attention for good. Not yet booked: it is marked done with 0 kg applied by the
    gateway (reported_at is what failure_monitor's claim skips, so it is never posted again); booked in part:
    the attention is cleared and the booked part stays as it is. Either way the rest is booked in Odoo by hand,
    and the audit row keeps the reason and what was (not) booked."""
    row = _locked_weighing(s, weighing_id)
    booked_before = row.reported_at is not None
    _begin_weighing_action(
        s,
        row,
        "weighing_give_up",
        actor=actor,
        via=via,
        kg=str(row.kg),
        applied_kg=str(row.applied_kg) if booked_before else None,
        # An earlier post of unknown outcome may have been booked after all: the person checks Odoo.
        outcome_unknown=row.outcome_unknown,
        **detail,
    )
    if not booked_before:
        row.reported_at, row.applied_kg = now(), Decimal("0.00")
        row.outcome_unknown, row.next_attempt_at = False, None
        row.last_error = f"given up by {actor} ({via}): {row.attention_reason}"[:2000]
    row.attention_reason, row.attention_at = None, None
    booked = f"{row.applied_kg} of {row.kg} kg booked by the gateway"
    return ActionResult(
        str(row.id), f"weighing {row.id}: given up ({booked}); book what is missing in Odoo by hand"
    )
