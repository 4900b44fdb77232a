"""The PLC program the simulator runs: the plant's handshakes (docs/architecture.md A3) driven by the memory map.

Per active slot: WRITE flag W = 0 means "a command is waiting". When the slot is ready (idle, or its last batch
acknowledged with R = 1) the program latches the command (a valid WRITE slot only), sets W = 1, clears R,
mirrors the command into the READ slot with zero consumption and doses toward the targets over the batch time.
At the end it writes the actual kg, the finished weight (REAL) and status_manufacturing = 1 (or, for a failed
batch, status_operation = 1 mid-way) and keeps the result until R = 1. Failures: one event at a time in the
failure area; the next is posted only after its flag reads 1. Every address comes from the memory map.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.plc.codecs import CodecError
from shared.plc.memory_map import FieldSpec, MemoryMap
from shared.plc.snapshot import BatchCommand, decode_batch_slot, encode_batch_command, encode_field
from simulators.plc.memory import DataMemory
from simulators.plc.weighing import WeighingProgram

log = logging.getLogger("plc_sim.program")

Phase = Literal["idle", "running", "finished", "acked"]

FAILURE_DESCRIPTIONS = (
    "START_FAILURE",
    "MOTOR_OVERLOAD",
    "LEVEL_LOW",
    "VALVE_STUCK",
    "SCALE_TIMEOUT",
    "FEEDER_BLOCKED",
)


@dataclass
class ProgramConfig:
    batch_seconds: float = 60.0
    speed: float = 1.0
    noise_kg: float = 0.5
    failure_rate_per_hour: float = 0.0
    op_failure_rate: float = 0.0  # probability a batch fails mid-way (status_operation = 1)
    # A program that raises the end status this long before it writes the finished weight (a weigh station
    # that settles late): the window in which a reader sees "finished" with 0 kg.
    weight_lag_s: float = 0.0
    # A program that sets W = 1 on latching this long before it clears the READ slot for the new batch: the
    # window in which W = 1 and the READ slot still shows the previous, acknowledged batch.
    mirror_lag_s: float = 0.0
    weighing_rate_per_hour: float = 0.0  # random manual weighings (for the MO a slot runs)
    weighing_products: tuple[int, ...] = ()  # product ids the random weighings use


@dataclass
class SlotState:
    slot: int
    phase: Phase = "idle"
    mo_id: str | None = None
    elapsed: float = 0.0
    duration: float = 0.0
    finals: dict[str, float] = field(default_factory=dict)
    fail_at: float | None = None  # progress fraction at which the batch fails
    failed: bool = False
    shown: dict[str, float] = field(default_factory=dict)
    mirror_due: float | None = None  # seconds until the READ slot is cleared for the latched batch
    mirror: tuple[int, ...] = ()
    weight_due: float | None = None  # seconds until the late finished weight is written (weight_lag_s)
    weight_late: float = 0.0
    rejected_block: tuple[int, ...] | None = None
    batches_started: int = 0
    batches_finished: int = 0
    batches_failed: int = 0
    batches_acked: int = 0
    violations: int = 0
    invalid_commands: int = 0

    @property
    def progress(self) -> float:
        return min(1.0, self.elapsed / self.duration) if self.duration > 0 else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "phase": self.phase,
            "mo_id": self.mo_id,
            "progress": round(self.progress, 3) if self.phase == "running" else None,
            "failed": self.failed,
            "batches_started": self.batches_started,
            "batches_finished": self.batches_finished,
            "batches_failed": self.batches_failed,
            "batches_acked": self.batches_acked,
            "violations": self.violations,
            "invalid_commands": self.invalid_commands,
        }


@dataclass
class FailureState:
    posted: int = 0
    acked: int = 0
    queued: int = 0
    waiting: bool = False  # an event is in memory and its flag still reads 0
    last: dict[str, str] | None = None
    requested: list[tuple[str | None, str | None]] = field(default_factory=list)


class PlcProgram:
    def __init__(self, memory: DataMemory, mmap: MemoryMap, config: ProgramConfig, rng: random.Random) -> None:
        self.memory = memory
        self.map = mmap
        self.config = config
        self.rng = rng
        self.slots = {n: SlotState(n) for n in mmap.slots()}
        self.failures = FailureState()
        self.weighing = WeighingProgram(memory, mmap, rng)
        self.weighing.rate_per_hour = config.weighing_rate_per_hour
        self.weighing.products = config.weighing_products
        self.reboots = 0
        self.clock: Callable[[], time.struct_time] = time.localtime  # the PLC clock (the simulator sets it)

    # ------------------------------------------------------------------ power-up / reboot

    def arm(self) -> None:
        """What an operator's `arm` does on a fresh PLC: W = 1 for every active slot."""
        for n in self.slots:
            self.memory.set(self.map.flag_address("write_slot", n), 1)

    def reboot(self, armed: bool) -> None:
        self.memory.clear()
        self.reboots += 1
        keep = self.slots
        self.slots = {n: SlotState(n) for n in self.map.slots()}
        for n, old in keep.items():  # counters survive, state does not
            new = self.slots[n]
            for name in (
                "batches_started",
                "batches_finished",
                "batches_failed",
                "batches_acked",
                "violations",
                "invalid_commands",
            ):
                setattr(new, name, getattr(old, name))
        self.failures.waiting = False
        self.failures.last = None
        self.weighing.reboot()
        if armed:
            self.arm()
        log.warning("PLC rebooted: memory cleared", extra={"armed": armed})

    # ------------------------------------------------------------------ FINS write hook

    def on_fins_write(self, address: int, words: Sequence[int]) -> None:
        """Called before a FINS write lands: count writes into a WRITE slot that is not free."""
        layout = self.map.layout_of("write_slot")
        end = address + len(words)
        for n, st in self.slots.items():
            base = self.map.base_address("write_slot", n)
            if end <= base or address >= base + layout.words:
                continue
            flag = base + layout.flag_offset
            if address == flag and len(words) == 1:
                continue  # the operator's arm (or a flag fix): not a command
            # A finished batch whose R flag already reads 1 is acknowledged (docs/architecture.md A3): the slot
            # is free even if the next scan has not yet moved the phase to "acked".
            acked = self.memory.get(self.map.flag_address("read_slot", n)) == 1
            busy = st.phase == "running" or (st.phase == "finished" and not acked)
            old = self.memory.read(address, len(words))
            overwrites_pending = self.memory.get(flag) == 0 and old != list(words)
            if busy or overwrites_pending:
                st.violations += 1
                why = f"batch {st.mo_id} is {st.phase}" if busy else "an unlatched command is overwritten"
                log.error("protocol violation: WRITE slot %d written while not free (%s)", n, why)

    # ------------------------------------------------------------------ scan

    def scan(self, dt: float) -> None:
        for st in self.slots.values():
            self._scan_slot(st, dt)
        self._scan_failures(dt)
        running = next((st.mo_id for st in self.slots.values() if st.phase == "running"), None)
        self.weighing.scan(dt, running, self.config.speed)

    def _scan_slot(self, st: SlotState, dt: float) -> None:
        n = st.slot
        w = self.memory.get(self.map.flag_address("write_slot", n))
        r = self.memory.get(self.map.flag_address("read_slot", n))
        if st.mirror_due is not None:
            st.mirror_due -= dt
            if st.mirror_due <= 0:
                self.memory.write(self.map.base_address("read_slot", n), list(st.mirror))
                st.mirror_due = None
        elif st.phase == "running":
            st.elapsed += dt
            self._dose(st)
        elif st.weight_due is not None:
            st.weight_due -= dt
            if st.weight_due <= 0:
                self._write_weight(st, st.weight_late)
                st.weight_due = None
        if st.phase == "finished" and r == 1:
            st.phase = "acked"
            st.batches_acked += 1
            log.info("slot %d: %s acknowledged", n, st.mo_id)
        if w == 0 and st.phase in ("idle", "acked"):
            self._latch(st)

    def _latch(self, st: SlotState) -> None:
        n = st.slot
        base = self.map.base_address("write_slot", n)
        block = tuple(self.memory.read(base, self.map.layout_of("write_slot").words))
        if block == st.rejected_block:
            return
        flag_at = self.map.layout_of("write_slot").flag_offset
        if not any(w for i, w in enumerate(block) if i != flag_at):  # a fresh, unarmed slot: nothing to run
            st.rejected_block = block
            return
        snap = decode_batch_slot(self.map, "write_slot", n, block)
        if not snap.valid or snap.empty:
            st.invalid_commands += 1
            st.rejected_block = block
            log.error("slot %d: invalid command not run (W stays 0): %s", n, "; ".join(snap.errors[:5]))
            return
        f = snap.fields
        cmd = BatchCommand(f["mo_id"], f["bom_name"], f["finished_goods"], f["quantity"], {})
        mirror = encode_batch_command(self.map, n, cmd)  # consumption 0, statuses 0, R = 0
        if self.config.mirror_lag_s > 0:  # W = 1 first; the READ slot follows (dosing waits for it)
            st.mirror_due, st.mirror = self.config.mirror_lag_s, tuple(mirror)
        else:
            self.memory.write(self.map.base_address("read_slot", n), mirror)
        self.memory.set(self.map.flag_address("write_slot", n), 1)
        targets: dict[str, float] = f["targets"]
        st.phase, st.mo_id, st.elapsed, st.failed = "running", f["mo_id"], 0.0, False
        st.duration = self.config.batch_seconds / self.config.speed
        st.finals = {code: self._final(code, kg) for code, kg in targets.items()}
        st.shown = {code: 0.0 for code in targets}
        st.fail_at = self.rng.uniform(0.2, 0.8) if self.rng.random() < self.config.op_failure_rate else None
        st.rejected_block, st.weight_due = None, None
        st.batches_started += 1
        log.info("slot %d: latched %s, dosing for %.2fs", n, st.mo_id, st.duration)

    def _final(self, code: str, target: float) -> float:
        if target <= 0:
            return 0.0
        spec = self._kg_spec(code)
        noisy = target + self.rng.uniform(-self.config.noise_kg, self.config.noise_kg)
        return round(min(max(noisy, 0.0), spec.max if spec.max is not None else noisy), 2)

    def _write_weight(self, st: SlotState, weight: float) -> None:
        spec = self.map.layout_of("read_slot").field("weight_finished_good")
        self.memory.write(self.map.base_address("read_slot", st.slot) + spec.offset, encode_field(spec, weight))

    def _kg_spec(self, code: str) -> FieldSpec:
        layout = self.map.layout_of("read_slot")
        return next(f for f in layout.fields if f.equipment == code and f.part == "kg")

    def _dose(self, st: SlotState) -> None:
        progress = st.progress
        failing = st.fail_at is not None and progress >= st.fail_at
        if failing and st.fail_at is not None:
            progress = st.fail_at
        base = self.map.base_address("read_slot", st.slot)
        for code, final in st.finals.items():
            actual = final if progress >= 1.0 else round(final * progress, 2)
            if actual != st.shown.get(code):
                spec = self._kg_spec(code)
                self.memory.write(base + spec.offset, encode_field(spec, actual))
                st.shown[code] = actual
        if not failing and progress < 1.0:
            return
        layout = self.map.layout_of("read_slot")
        weight_spec = layout.field("weight_finished_good")
        weight = round(sum(st.shown.values()), 2)
        if weight_spec.max is not None:
            weight = min(weight, weight_spec.max)
        if self.config.weight_lag_s > 0:
            st.weight_due, st.weight_late = self.config.weight_lag_s, weight
        else:
            self._write_weight(st, weight)
        status = "status_operation" if failing else "status_manufacturing"
        self.memory.set(base + layout.field(status).offset, 1)
        # The batch's end as the PLC holds it, one JSON line: the fault suite's independent record of it.
        record: dict[str, Any] = {
            "mo_id": st.mo_id,
            "consumption": {code: st.shown.get(code, 0.0) for code in self.map.equipment_codes},
            "weight_finished_good": weight,
            "status_manufacturing": 0 if failing else 1,
            "status_operation": 1 if failing else 0,
        }
        log.info("slot %d: final %s", st.slot, json.dumps(record, sort_keys=True))
        st.phase = "finished"
        st.failed = failing
        if failing:
            st.batches_failed += 1
            log.warning("slot %d: %s failed at %.0f%%", st.slot, st.mo_id, 100 * progress)
        else:
            st.batches_finished += 1
            log.info("slot %d: %s finished, %.2f kg", st.slot, st.mo_id, weight)

    # ------------------------------------------------------------------ equipment failures

    def trigger_failure(self, equipment: str | None = None, description: str | None = None) -> None:
        """Queue a failure event; None = a random code / text. Anything the words can hold is posted as asked,
        a code the memory map does not list and an empty description included: the plant's program can raise
        both, and the gateway must park them, not lose them. Raises ValueError if the words cannot hold it."""
        if equipment is not None:
            if not equipment:
                raise ValueError("the equipment code must not be empty")
            try:
                self._failure_words(equipment, description or "", self.clock())
            except CodecError as exc:
                raise ValueError(f"cannot post failure {equipment!r}/{description!r}: {exc}") from None
        self.failures.requested.append((equipment, description))
        self.failures.queued += 1

    def _scan_failures(self, dt: float) -> None:
        fs = self.failures
        flag = self.memory.get(self.map.flag_address("failure"))
        if fs.waiting and flag == 1:
            fs.waiting = False
            fs.acked += 1
            if fs.last is not None:  # the per-event record the fault suite checks against the database
                last = fs.last
                log.info(
                    "equipment failure acknowledged: %s|%s|%s",
                    last["equipment_code"],
                    last["description"],
                    last["timestamp"],
                )
        rate = self.config.failure_rate_per_hour
        if rate > 0 and fs.queued == 0 and self.rng.random() < rate / 3600 * dt * self.config.speed:
            fs.requested.append((None, None))
            fs.queued += 1
        if fs.queued and not fs.waiting and self._failure_area_free(flag):
            equipment, description = fs.requested.pop(0)
            fs.queued -= 1
            self._post_failure(equipment, description)

    def _failure_area_free(self, flag: int) -> bool:
        layout = self.map.layout_of("failure")
        words = self.memory.read(self.map.base_address("failure"), layout.words)
        return flag == 1 or not any(words)

    def _post_failure(self, equipment: str | None, description: str | None) -> None:
        code = equipment if equipment is not None else self.rng.choice(self.map.equipment_codes)
        text = description if description is not None else self.rng.choice(FAILURE_DESCRIPTIONS)
        now = self.clock()
        try:
            words = self._failure_words(code, text, now)
        except (CodecError, KeyError) as exc:
            log.error("cannot post failure %s/%s: %s", code, text, exc)
            return
        self.memory.write(self.map.base_address("failure"), words)
        self.failures.posted += 1
        self.failures.waiting = True
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", now)
        self.failures.last = {"equipment_code": code, "description": text, "timestamp": stamp}
        log.warning("equipment failure posted: %s %s", code, text)

    def _failure_words(self, code: str, text: str, now: time.struct_time) -> list[int]:
        """The failure area's words for one event (flag 0); raises CodecError if a value does not fit."""
        layout = self.map.layout_of("failure")
        values: dict[str, Any] = {
            "equipment_code": code,
            "description": text,
            "year": now.tm_year,
            "month": now.tm_mon,
            "day": now.tm_mday,
            "hour": now.tm_hour,
            "minute": now.tm_min,
            "second": now.tm_sec,
            "status_read_data": 0,
        }
        words = [0] * layout.words
        for spec in layout.fields:
            words[spec.offset : spec.end] = encode_field(spec, values[spec.name])
        return words

    def state(self) -> dict[str, Any]:
        fs = self.failures
        return {
            "slots": [st.as_dict() for st in self.slots.values()],
            "failures": {
                "posted": fs.posted,
                "acked": fs.acked,
                "queued": fs.queued,
                "waiting": fs.waiting,
                "last": fs.last,
            },
            "weighings": self.weighing.as_dict(),
            "reboots": self.reboots,
        }
