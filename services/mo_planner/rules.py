"""mo_planner's decisions as pure functions: when a slot is free, and what a READ/WRITE snapshot means for
the batch the database expects in that slot. The service shell applies them (SQL, MQTT) and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

from shared.mqtt.snapshots import ReadSlotSnapshot, WriteSlotSnapshot
from shared.odoo.mapping import Batch

# Batch states in which a slot is occupied by a batch that has not reached its end on the PLC.
OCCUPYING_STATES = frozenset({"written", "accepted", "running"})
# A READ slot says finished but holds no finished weight yet: not final (the reason of that RUNNING decision).
WAITING_FOR_WEIGHT = "finished without a finished weight yet: waiting for the PLC to write it"
# States after the PLC reported the end: the READ slot must still be acknowledged (R = 1).
ENDED_STATES = frozenset({"finished", "failed", "reported", "attention", "cancelled"})


@dataclass(frozen=True)
class Expected:
    """What the database knows about the batch a snapshot names."""

    mo_id: str
    slot: int | None
    state: str
    actuals: Mapping[str, float]
    weight: float | None
    request_sent: bool = False  # a write_batch for this row was sent; its reply may have been lost
    fingerprint: str | None = None  # of the final result stored (None: no result stored)
    attention_from: str | None = None  # the state an `attention` row came from

    def on_plc(self, slot: int) -> bool:
        """Written to this slot, or queued for it with a request whose reply never arrived (a crash or a lost
        reply): the PLC showing the MO proves the write landed."""
        return self.slot == slot and (
            self.state in OCCUPYING_STATES or (self.state == "queued" and self.request_sent)
        )


class Action(Enum):
    IGNORE = "ignore"  # nothing new
    ALARM = "alarm"  # invalid snapshot or a batch the database does not expect: never applied
    ACCEPTED = "accepted"  # WRITE slot shows the PLC took our command (W = 1)
    RUNNING = "running"  # dosing started / actuals changed
    FINISH = "finish"  # status_manufacturing = 1: store final values, then ack
    FAIL = "fail"  # status_operation = 1 before finish: store, then ack; Odoo cancel follows
    ACK = "ack"  # the slot holds exactly the stored result, R still 0: (re)send the acknowledgement


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    adopt: bool = False  # the row is still `queued`: record it as written first (queued -> written)
    # The row is in `attention` as lost on the PLC, but the PLC shows it: back to the state it came from first.
    recover: bool = False


def slot_free(
    write: WriteSlotSnapshot | None,
    read: ReadSlotSnapshot | None,
    *,
    occupied_in_db: bool,
    acked_mo: str | None = None,
) -> tuple[bool, str]:
    """A slot takes the next batch only when W = 1, its READ side is empty or acknowledged (R = 1), and the
    database has no batch written to it that has not ended. `acked_mo` is an MO we saw acknowledged after
    the latest READ snapshot (the ack reply arrives before the next poll shows R = 1)."""
    if occupied_in_db:
        return False, "a batch written to this slot has not ended"
    if write is None or not write.valid:
        return False, "no valid WRITE snapshot"
    if write.flag != 1:
        return False, "PLC has not taken the last command (W=0)"
    if read is None or not read.valid:
        return False, "no valid READ snapshot"
    if read.empty:
        return True, "READ slot empty"
    if read.flag == 1 or (acked_mo is not None and read.mo_id == acked_mo):
        return True, "last batch acknowledged"
    return False, f"batch {read.mo_id} not acknowledged (R=0)"


def on_write_snapshot(msg: WriteSlotSnapshot, expected: Expected | None) -> Decision:
    held = msg.batch
    if held is None or expected is None:
        return Decision(Action.IGNORE)
    taken = held.status_read_data == 1
    if taken and expected.on_plc(msg.slot) and expected.state in ("written", "queued"):
        return Decision(Action.ACCEPTED, "PLC set W=1", adopt=expected.state == "queued")
    return Decision(Action.IGNORE)


def on_read_snapshot(
    msg: ReadSlotSnapshot,
    expected: Expected | None,
    *,
    fingerprint: str | None,
    archived: bool = False,
    archived_fingerprints: Collection[str] = (),
) -> Decision:
    """`expected` is the mo_batch row named by the snapshot's MO (None if absent); `archived` whether the MO
    is in mo_histories (an acknowledged, archived batch legitimately stays in the READ slot) and
    `archived_fingerprints` the results stored with its archived rows. `fingerprint` is the snapshot's own
    (shared/plc/fingerprint.py).

    Acknowledge only what is stored: R = 1 is sent only when the slot holds exactly the stored result (same
    fingerprint). A result the database never stored is never acknowledged by a rule: it is stored first (a
    batch wrongly held as lost) or an operator decides (alarm)."""
    if not msg.valid:
        return Decision(Action.ALARM, "invalid READ snapshot: " + "; ".join(msg.errors[:3]))
    held = msg.batch
    if held is None:
        return Decision(Action.IGNORE)  # empty
    mo_id, slot, r_flag = held.mo_id, msg.slot, held.status_read_data
    if expected is None:
        if archived and r_flag == 1:
            return Decision(Action.IGNORE)
        if archived:
            return _ack_if_stored(mo_id, slot, archived_fingerprints, fingerprint)
        return Decision(Action.ALARM, f"READ slot {slot} holds {mo_id}, which the database does not expect")
    if expected.slot != slot:
        return Decision(Action.ALARM, f"READ slot {slot} holds {mo_id}, expected in slot {expected.slot}")
    lost_but_seen = (
        expected.state == "attention"
        and expected.attention_from in OCCUPYING_STATES
        and expected.fingerprint is None
    )
    weightless = held.status_manufacturing == 1 and held.status_operation != 1
    weightless = weightless and not held.weight_finished_good > 0
    if lost_but_seen and held.ended and r_flag == 0 and not weightless:
        # Held as lost (slot read empty, a reboot?) yet the PLC shows its end: it was not lost. Store it.
        action = Action.FAIL if held.status_operation == 1 else Action.FINISH
        return Decision(action, f"{mo_id} was held as lost, the PLC shows its result", recover=True)
    if expected.state in ENDED_STATES:
        if r_flag == 1:
            return Decision(Action.IGNORE)
        stored = () if expected.fingerprint is None else (expected.fingerprint,)
        return _ack_if_stored(mo_id, slot, stored, fingerprint)
    if not expected.on_plc(slot):
        return Decision(Action.ALARM, f"READ slot {slot} holds {mo_id} but it is {expected.state}, not written")
    adopt = expected.state == "queued"
    if held.status_operation == 1:
        return Decision(Action.FAIL, "status_operation = 1", adopt)
    if held.status_manufacturing == 1:
        if not held.weight_finished_good > 0:
            # Final values only with the finished weight: a program that raises the status a scan before it
            # writes the weight would otherwise have 0 kg stored and acknowledged for good (issue 10.10).
            return Decision(Action.RUNNING, WAITING_FOR_WEIGHT, adopt)
        return Decision(Action.FINISH, "status_manufacturing = 1", adopt)
    if expected.state != "running" or dict(held.consumption) != dict(expected.actuals):
        return Decision(Action.RUNNING, "", adopt)
    return Decision(Action.IGNORE)


def _ack_if_stored(mo_id: str, slot: int, stored: Collection[str], seen: str | None) -> Decision:
    if not stored:
        return Decision(Action.ALARM, f"READ slot {slot} holds a result of {mo_id} that was never stored")
    if seen not in stored:
        return Decision(Action.ALARM, f"READ slot {slot} holds another result of {mo_id} than the one stored")
    return Decision(Action.ACK, f"{mo_id}: stored result still waits for its ack")


# ------------------------------------------------------------------ a queued MO against Odoo's current MO

# MO states in which Odoo will never take this batch's consumption: the batch must not be dosed.
ODOO_CLOSED_STATES = frozenset({"cancel", "done"})


@dataclass(frozen=True)
class QueuedValues:
    """What a queued batch would write to the PLC (as stored in mo_batch)."""

    quantity: float
    bom_name: str
    finished_goods: str
    targets: Mapping[str, float]  # kg per dosing code, only codes with a target > 0


class Recheck(Enum):
    SAME = "same"  # Odoo holds what is queued: write it
    UPDATE = "update"  # Odoo's MO changed and is still dosable: queue the new values instead
    CANCEL = "cancel"  # cancelled or done in Odoo: never written
    ATTENTION = "attention"  # Odoo's MO cannot be dosed as it is now: a person decides


@dataclass(frozen=True)
class RecheckDecision:
    verdict: Recheck
    reason: str = ""
    values: QueuedValues | None = None  # the new values for UPDATE


def recheck_queued(stored: QueuedValues, state: str, fresh: Batch) -> RecheckDecision:
    """Decide what a queued batch becomes once Odoo shows its MO as `state` and `fresh` (mapped now).

    An MO can be cancelled, finished or edited in Odoo after it was queued; the PLC must dose what Odoo holds
    at the moment of writing, never an old copy (issue 10.4). Values are compared as stored (kg to 0.01)."""
    if state in ODOO_CLOSED_STATES:
        return RecheckDecision(Recheck.CANCEL, f"the MO is {state} in Odoo: not written to the PLC")
    if fresh.problems:
        return RecheckDecision(Recheck.ATTENTION, "; ".join(fresh.problems))
    if not fresh.targets:
        return RecheckDecision(Recheck.ATTENTION, "the MO in Odoo no longer has a component on a dosing equipment")
    values = QueuedValues(
        round(fresh.quantity, 2),
        fresh.bom_name,
        fresh.finished_goods,
        {code: round(kg, 2) for code, kg in fresh.targets.items()},
    )
    same = (
        values.quantity == round(stored.quantity, 2)
        and values.bom_name == stored.bom_name
        and values.finished_goods == stored.finished_goods
        and dict(values.targets) == {c: round(kg, 2) for c, kg in stored.targets.items() if kg > 0}
    )
    if same:
        return RecheckDecision(Recheck.SAME)
    return RecheckDecision(Recheck.UPDATE, "the MO changed in Odoo after it was queued", values)
