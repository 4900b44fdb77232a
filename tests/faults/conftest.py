"""Fault-injection harness: the whole system as separate processes, a seeded fault plan, and the checks of
docs/architecture.md A8 read back from PostgreSQL, the Odoo simulator, the PLC simulator and MQTT.

Replay a failing scenario with the seed printed in its output / assertion message:
    FAULT_SEED=1234 .venv/bin/pytest tests/faults -k <scenario>
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tests.support.system as system_module
from deploy.servers import PostgresCluster, free_port, server_account
from shared.odoo.client import OdooClient
from shared.odoo.settings import OdooSettings
from shared.plc.memory_map import load_memory_map
from tests.support.system import System

# Dosed equipment -> mo_histories column suffix (the seed's column names).
ACTUAL_SUFFIX = {
    **{f"silo{101 + i}": f"silo_{chr(ord('a') + i)}" for i in range(13)},
    "lq114": "lq_tetes",
    "lq115": "lq_fml",
}
SERVICES = ("plc_gateway", "mo_planner", "odoo_sync", "failure_monitor")
MAP = load_memory_map()


# ---------------------------------------------------------------- seeds


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """FAULT_SEED replays a run; otherwise a fresh seed per test, printed so a failure can be replayed."""
    value = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"seed={value} ({request.node.name}); replay: FAULT_SEED={value} pytest '{request.node.nodeid}'")
    return value


# ---------------------------------------------------------------- a private PostgreSQL we may restart


class PgCluster(PostgresCluster):
    """Our own trusted cluster (deploy/servers.py, own data dir and port): restarting it never touches the
    machine's server. The system under faults takes its databases from here."""

    @contextlib.contextmanager
    def fresh_database(self, prefix: str = "t") -> Iterator[str]:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        engine = sa.create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        yield self.admin_url(name)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="pg-faults-")), free_port(), server_account())
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()


# ---------------------------------------------------------------- the system under faults


@dataclass
class Plan:
    """What a scenario expects once its faults have cleared."""

    seed: int
    mos: int
    failures: int = 0
    unreportable_every: int = 0  # every k-th failure event is one Odoo can never accept (failure_event)
    weighings: int = 0  # valid manual weighings the PLC posts (odoo-sim's synthetic CaCO3)
    invalid_weighings: int = 0  # wrong entries at the scale: posted, never stored or acked, then withdrawn
    allow_attention: frozenset[str] = frozenset()  # MO ids allowed to end in attention (e.g. PLC reboot)
    cancelled_in_odoo: frozenset[str] = frozenset()  # MOs cancelled in Odoo after queueing: never dosed
    notes: list[str] = field(default_factory=list)

    @property
    def unreportable_failures(self) -> int:
        return sum(1 for n in range(self.failures) if failure_event(n, self.unreportable_every)[2])


def start_system(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    mos: int,
    slots: int = 1,
    cluster: PgCluster | None = None,
    batch_seconds: float = 0.5,
    sim_args: list[str] | None = None,
    odoo_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> System:
    """System with exactly `mos` confirmed MOs in Odoo (no recorded seed: nothing else to dose)."""
    if cluster is not None:
        monkeypatch.setattr(system_module, "fresh_database", cluster.fresh_database)
    s = System(
        tmp_path,
        slots=slots,
        batch_seconds=batch_seconds,
        extra_mos=mos,
        sim_args=sim_args,
        odoo_args=["--seed", "none", *(odoo_args or [])],
        env={"COMMAND_TIMEOUT_S": "2", "ODOO_CONNECT_TIMEOUT": "1", "ODOO_READ_TIMEOUT": "3", **(env or {})},
    )
    try:
        s.wait_healthy(60)
    except BaseException:
        s.stop()
        raise
    return s


@pytest.fixture
def systems() -> Iterator[list[System]]:
    """Collects the systems a test starts; stops them whatever happens."""
    started: list[System] = []
    yield started
    for s in started:
        s.stop()


def failure_event(n: int, unreportable_every: int = 0) -> tuple[str, str, bool]:
    """The n-th failure event of a scenario: (code, text, Odoo can never accept it). Each is distinct (code and
    text make its event_id); every k-th one carries an equipment code the memory map does not list or, the next
    time, an empty description: stored and acknowledged, then parked in attention, never posted to Odoo."""
    codes = list(ACTUAL_SUFFIX)
    code, text = codes[n % len(codes)], f"FAULT_TEST_{n}"
    if not unreportable_every or n % unreportable_every != unreportable_every - 1:
        return code, text, False
    if n // unreportable_every % 2 == 0:
        return f"mixer{n % 100:02d}", text, True
    return code, "", True


def post_failure(s: System, n: int, unreportable_every: int = 0) -> None:
    code, text, _ = failure_event(n, unreportable_every)
    s.plc("POST", "/failure", {"equipment": code, "description": text})


WEIGHED_PRODUCT = 600  # CaCO3 in odoo-sim's synthetic recipes: an MO-level (PLC01) component, no silo doses it
WEIGHING_ITEM = MAP.layout_of("manual_weighing").item_group


def weighing_is_valid(product_id: int, kg: float) -> bool:
    """What the gateway's decoder accepts for an item (the map's limits; the header is always valid here)."""
    product, weight = WEIGHING_ITEM.field("product_id"), WEIGHING_ITEM.field("kg")
    return product_id >= (product.min or 1) and (weight.min or 0.01) <= kg <= (weight.max or float("inf"))


def weighing_mo(s: System) -> str:
    """The MO the scenario's hand weighings are for (the first one Odoo lists)."""
    return str(min(m["mo_id"] for m in s.odoo_state()["mos"]))


def post_weighing(s: System, n: int, mo_id: str) -> None:
    """Weighings come in identical pairs (same MO, product and kg): two weighings in a row, not one."""
    kg = round(0.5 + (n // 2 % 5) * 0.1, 2)
    s.plc("POST", "/weighing", {"mo_id": mo_id, "product_id": WEIGHED_PRODUCT, "kg": kg})


def restart_later(s: System, name: str, rng: random.Random, lo: float = 0.1, hi: float = 1.2) -> None:
    s.procs[name].kill9()
    time.sleep(rng.uniform(lo, hi))
    s.start_service(name)


def drive(
    s: System,
    plan: Plan,
    *,
    budget_s: float,
    step: Callable[[float], None] | None = None,
    failure_every: float = 1.5,
    until: Callable[[], bool] | None = None,
) -> None:
    """Run until every MO is archived, every failure and weighing is posted and `until()` (when given) holds;
    `step(elapsed)` injects faults."""
    start = time.monotonic()
    posted = weighed = 0
    next_failure = next_weighing = start + 0.5
    mo_id = weighing_mo(s) if plan.weighings else ""
    while True:
        elapsed = time.monotonic() - start
        if posted < plan.failures and time.monotonic() >= next_failure:
            post_failure(s, posted, plan.unreportable_every)
            posted += 1
            next_failure = time.monotonic() + failure_every
        if weighed < plan.weighings and time.monotonic() >= next_weighing:
            post_weighing(s, weighed, mo_id)
            weighed += 1
            next_weighing = time.monotonic() + failure_every
        if step is not None:
            step(elapsed)
        all_posted = posted == plan.failures and weighed == plan.weighings and (until is None or until())
        if all_posted and ended_count(s) >= plan.mos:
            return
        if elapsed > budget_s:
            return  # the drain check below reports what is stuck
        time.sleep(0.1)


def ended_count(s: System) -> int:
    """MOs archived, plus those parked in attention: neither moves again without a person (the checks after
    the drive decide whether each attention was allowed)."""
    try:
        return archived_count(s) + int(s.sql("SELECT count(*) FROM mo_batch WHERE state = 'attention'")[0][0])
    except sa.exc.OperationalError:
        return 0


def archived_count(s: System) -> int:
    try:
        return int(s.sql("SELECT count(DISTINCT mo_id) FROM mo_histories")[0][0])
    except sa.exc.OperationalError:
        return 0


# ---------------------------------------------------------------- checks


def _stuck_report(s: System) -> str:
    rows = s.sql("SELECT mo_id, state, slot, last_error FROM mo_batch ORDER BY id")
    fails = s.sql("SELECT event_id, equipment_code, acked_at, reported_at, last_error FROM equipment_failure")
    return f"mo_batch={rows}\nfailures={fails}\nplc={s.plc_state()}"


def wait_drained(s: System, plan: Plan, timeout: float = 60.0) -> None:
    """Nothing stuck: once the faults are gone every MO and failure reaches its end within `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            left = s.sql("SELECT mo_id, state FROM mo_batch")
            archived = archived_count(s)
            # Open = not acknowledged yet, or neither reported nor parked for a person (the checks decide
            # whether a parked one was allowed).
            open_rows = (
                "SELECT count(*) FILTER (WHERE acked_at IS NULL OR "
                "(reported_at IS NULL AND attention_reason IS NULL)), count(*) FROM "
            )
            fails = s.sql(open_rows + "equipment_failure")[0]
            weighings = s.sql(open_rows + "manual_weighing")[0]
            plc = s.plc_state()
        except (sa.exc.OperationalError, OSError) as exc:
            last = str(exc)
            time.sleep(0.5)
            continue
        batches_done = all(state == "attention" and mo in plan.allow_attention for mo, state in left)
        all_seen = archived + len(left) >= plan.mos
        fails_done = fails[0] == 0 and fails[1] >= plan.failures
        plc_done = plc["failures"]["queued"] == 0 and not plc["failures"]["waiting"]
        weighings_done = weighings[0] == 0 and weighings[1] >= plan.weighings
        plc_done = plc_done and plc["weighings"]["queued"] == 0 and not plc["weighings"]["waiting"]
        plc_idle = all(slot["phase"] in ("idle", "acked") for slot in plc["slots"]) or bool(left)
        if batches_done and all_seen and fails_done and weighings_done and plc_done and plc_idle:
            return
        last = (
            f"archived={archived} left={left} failures(open,total)={tuple(fails)} "
            f"weighings(open,total)={tuple(weighings)} plc={plc}"
        )
        if fails[0]:
            last += f"\nopen failures: {_stuck_report(s)}"
        time.sleep(0.3)
    raise AssertionError(f"seed={plan.seed}: work did not drain within {timeout}s: {last}\n{s.logs()}")


def odoo_product_consumption(s: System, mo_id: str, product_id: int) -> float:
    """The MO's consumption of the product as Odoo's mo-detail shows it (through the real client)."""
    client = OdooClient(
        OdooSettings(odoo_url=s.env["ODOO_URL"], odoo_db="plant", odoo_login="admin", odoo_password="admin")
    )
    try:
        mo = client.mo_detail(mo_id)
    finally:
        client.close()
    return round(sum(c.consumed for c in mo.components_consumption if c.product_id == product_id), 2)


# plc-sim's own log is the PLC's record of what happened; each helper below parses the text of it that
# check_invariants read once (it grows to megabytes in a long soak).


def plc_latches(plc_log: str) -> Counter[str]:
    """How often the PLC latched (started) each MO."""
    return Counter(re.findall(r"latched (\S+), dosing", plc_log))


def plc_finals(plc_log: str) -> dict[str, dict[str, Any]]:
    """Each batch's final values as plc-sim recorded them when it ended it (one JSON per batch)."""
    finals: dict[str, dict[str, Any]] = {}
    for line in re.findall(r"slot \d+: final (\{.*\})", plc_log):
        doc = json.loads(line)
        finals[doc["mo_id"]] = doc
    return finals


def plc_acks(plc_log: str) -> Counter[str]:
    """How often the PLC took R = 1 for each MO."""
    return Counter(re.findall(r"slot \d+: (\S+) acknowledged", plc_log))


def plc_failure_acks(plc_log: str) -> list[tuple[str, str, str]]:
    """(code, text, PLC local time) of every failure event the PLC saw acknowledged (F = 1)."""
    found = re.findall(r"equipment failure acknowledged: ([^|\n]*)\|([^|\n]*)\|([0-9: -]{19})", plc_log)
    return [(code, text, stamp) for code, text, stamp in found]


class ScaleLogReader:
    """The person at the scale for weighings parked because nobody can know whether the PLC took their flag
    (the gateway stopped between the write and its read-back, and an identical weighing is in the item now;
    docs/architecture.md "A weighing's flag write is journalled"). They decide from the scale's log, here
    plc-sim's: more weighings of that item and content taken on the PLC than acknowledged rows -> the PLC took
    it (`edgectl weighing-acked`); otherwise the write was lost (`edgectl weighing-retry`). Runs in its own
    thread for the whole soak, as a person would look now and then."""

    def __init__(self, s: System, every_s: float = 2.0) -> None:
        self.s, self.every_s = s, every_s
        self.decided: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-log-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.decide()
            except (sa.exc.OperationalError, OSError) as exc:  # the chaos restarts PostgreSQL too
                self.errors.append(str(exc))

    def decide(self) -> None:
        parked = self.s.sql(
            "SELECT id, item, mo_id, product_id, kg FROM manual_weighing "
            "WHERE acked_at IS NULL AND ack_code = 'outcome_unknown' AND attention_reason IS NOT NULL"
        )
        if not parked:
            return
        taken = Counter(a.content for a in plc_weighing_acks(self.s.procs["plc-sim"].log()))
        acked = Counter(
            (r.item, r.mo_id, r.product_id, f"{r.kg:.2f}")
            for r in self.s.sql(
                "SELECT item, mo_id, product_id, kg FROM manual_weighing WHERE acked_at IS NOT NULL"
            )
        )
        for row in parked:
            content = (row.item, row.mo_id, row.product_id, f"{row.kg:.2f}")
            action = "weighing-acked" if taken[content] > acked[content] else "weighing-retry"
            done = self.s.edgectl(action, str(row.id))
            if done.returncode == 0:
                self.decided[action] += 1
            else:
                self.errors.append(f"{action} {row.id}: {done.stderr.strip()}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass(frozen=True)
class PlcWeighingAck:
    """A manual weighing the PLC saw taken (its item's flag read 1), with the time plc-sim logged it."""

    at: dt.datetime
    item: int
    mo_id: str
    product_id: int
    kg: str  # as the PLC held it, 2 decimals

    @property
    def content(self) -> tuple[int, str, int, str]:
        return self.item, self.mo_id, self.product_id, self.kg


def plc_weighing_acks(plc_log: str) -> list[PlcWeighingAck]:
    found = re.findall(
        r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*manual weighing acknowledged: item (\d+) (\S+) "
        r"product (\d+) (-?[0-9.]+) kg$",
        plc_log,
        re.MULTILINE,
    )
    return [
        # plc-sim logs its local wall time (logging's asctime): made aware to compare with PostgreSQL's.
        PlcWeighingAck(dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").astimezone(), int(k), mo, int(p), kg)
        for at, k, mo, p, kg in found
    ]


def finished_snapshots(s: System) -> dict[str, dict[str, Any]]:
    """The PLC's final values per MO as the independent MQTT watcher saw them (status_manufacturing = 1)."""
    finals: dict[str, dict[str, Any]] = {}
    for _, topic, body, _ in list(s.watch.messages):
        if body is None or "/plc/read/" not in topic or not body.get("valid") or body.get("empty"):
            continue
        f = body.get("fields") or {}
        if f.get("status_manufacturing") == 1 or f.get("status_operation") == 1:
            prev = finals.get(f["mo_id"])
            assert prev is None or (prev["consumption"], prev["weight_finished_good"]) == (
                f["consumption"],
                f["weight_finished_good"],
            ), f"the PLC's final values of {f['mo_id']} changed after the end: {prev} -> {f}"
            finals[f["mo_id"]] = f
    return finals


def check_invariants(s: System, plan: Plan) -> dict[str, Any]:
    """docs/architecture.md A8, read back from every side. Returns a summary for the report."""
    tag = f"seed={plan.seed}"
    plc = s.plc_state()
    plc_log = s.procs["plc-sim"].log()  # read once: every PLC-side record below comes from it
    odoo = s.odoo_state()
    odoo_mos = {m["mo_id"]: m for m in odoo["mos"]}

    # --- archived exactly once, never both completed and queued again
    hist = s.sql("SELECT mo_id, status, count(*) FROM mo_histories GROUP BY mo_id, status")
    per_mo = Counter(mo for mo, _, _ in hist)
    assert all(n == 1 for _, _, n in hist) and all(n == 1 for n in per_mo.values()), (
        f"{tag}: archived twice {hist}"
    )
    leftover = {mo for (mo,) in s.sql("SELECT mo_id FROM mo_batch")}
    assert not leftover & set(per_mo), f"{tag}: MO both archived and still in mo_batch: {leftover & set(per_mo)}"

    # --- every completed MO: in Odoo with exactly the PLC's final values (as the PLC itself recorded them;
    # the MQTT watcher only checks they never change, it may miss messages while the broker is down)
    finished_snapshots(s)
    finals = plc_finals(plc_log)
    completed = s.sql("SELECT * FROM mo_histories WHERE status = 'completed'")
    for row in completed:
        r = row._mapping
        mo = odoo_mos[r["mo_id"]]
        assert r["update_odoo"] is True, f"{tag}: {r['mo_id']} archived completed without Odoo confirmation"
        plc_final = finals.get(r["mo_id"])
        assert plc_final is not None, f"{tag}: {r['mo_id']} archived but the PLC never showed it finished"
        assert plc_final["status_manufacturing"] == 1, f"{tag}: {r['mo_id']} completed but the PLC failed it"
        for code, kg in plc_final["consumption"].items():
            db_kg = r[f"actual_consumption_{ACTUAL_SUFFIX[code]}"]
            assert float(db_kg or 0) == pytest.approx(kg, abs=0.005), (
                f"{tag}: {r['mo_id']} {code} DB {db_kg} PLC {kg}"
            )
            if kg > 0:
                got = mo["consumption"].get(code)
                assert got == pytest.approx(kg, abs=0.005), f"{tag}: {r['mo_id']} {code} Odoo {got} PLC {kg}"
        weight = plc_final["weight_finished_good"]
        assert mo["qty_producing"] == pytest.approx(weight, abs=0.005), (
            f"{tag}: {r['mo_id']} Odoo qty_producing {mo['qty_producing']} != PLC finished weight {weight}"
        )
    cancelled = [m for m, st, _ in hist if st == "cancelled"]
    never_written = {m for (m,) in s.sql("SELECT mo_id FROM mo_histories WHERE written_at IS NULL")}
    latches = plc_latches(plc_log)
    for mo_id in cancelled:
        assert odoo_mos[mo_id]["state"] == "cancel", f"{tag}: {mo_id} archived cancelled, Odoo says otherwise"
        if mo_id in never_written:
            # Cancelled in Odoo before it was written: the PLC must never have run it.
            assert mo_id in plan.cancelled_in_odoo, f"{tag}: {mo_id} cancelled before the PLC, nobody cancelled it"
            assert mo_id not in latches, f"{tag}: {mo_id} was cancelled in Odoo and still dosed"
            continue
        assert finals.get(mo_id, {}).get("status_operation") == 1, (
            f"{tag}: {mo_id} cancelled but PLC did not fail it"
        )
    # Every batch the PLC ended is stored: nothing finished on the PLC was lost.
    lost = set(finals) - set(per_mo) - leftover
    assert not lost, f"{tag}: the PLC ended {lost} but the database has no trace of it"

    # --- written to the PLC at most once per queueing; no slot overwritten before taken
    written = Counter(
        dict(s.sql("SELECT mo_id, count(*) FROM audit_event WHERE to_state='written' GROUP BY mo_id"))
    )
    queued = Counter(dict(s.sql("SELECT mo_id, count(*) FROM audit_event WHERE action='queued' GROUP BY mo_id")))
    twice = {mo: n for mo, n in written.items() if n > queued[mo]}
    assert not twice, f"{tag}: written more often than queued: {twice}"
    dosed_twice = {mo: n for mo, n in latches.items() if n > queued[mo]}
    assert not dosed_twice, f"{tag}: the PLC ran an MO more often than it was queued: {dosed_twice}"
    unknown = set(latches) - set(queued)
    assert not unknown, f"{tag}: the PLC ran MOs nobody queued: {unknown}"
    started = sum(slot["batches_started"] for slot in plc["slots"])
    assert started == sum(latches.values()), f"{tag}: batches_started {started} != latches {latches}"
    for slot in plc["slots"]:
        assert slot["violations"] == 0, f"{tag}: slot {slot['slot']} overwritten before the PLC took it: {slot}"
        assert slot["invalid_commands"] == 0, f"{tag}: the gateway wrote an invalid command: {slot}"

    # --- no acknowledgement without storage, per MO, as the PLC saw it (its own log of R = 1 per batch)
    stored = {
        mo
        for (mo,) in s.sql(
            "SELECT mo_id FROM mo_batch WHERE result_fingerprint IS NOT NULL "
            "UNION SELECT mo_id FROM mo_histories WHERE result_fingerprint IS NOT NULL"
        )
    }
    acked_by_plc = plc_acks(plc_log)
    unstored = sorted(set(acked_by_plc) - stored)
    assert not unstored, f"{tag}: the PLC took an ack for {unstored}, whose result is not stored"
    acked_twice = {mo: n for mo, n in acked_by_plc.items() if n > queued[mo]}
    assert not acked_twice, f"{tag}: acked on the PLC more often than queued: {acked_twice}"

    # --- failures: stored once, acked after storage, reported to Odoo exactly once; the ones Odoo can never
    # accept (unknown equipment, empty text) stored, acked, parked in attention and never posted
    failures = _check_failures(s, plan, plc, plc_log, odoo["failures"])
    weighings = _check_weighings(s, plan, plc, plc_log)
    return {
        "acks_without_storage": len(unstored) + failures["acked_unstored"] + weighings["acked_unstored"],
        "completed": len(completed),
        "cancelled": len(cancelled),
        "attention": sorted(leftover),
        "failures": failures,
        "weighings": weighings,
        "batches_started": started,
    }


def _check_failures(
    s: System, plan: Plan, plc: dict[str, Any], plc_log: str, odoo_failures: list[dict[str, Any]]
) -> dict[str, Any]:
    tag = f"seed={plan.seed}"
    rows = s.sql(
        "SELECT event_id, equipment_code, description, plc_time_utc, acked_at, reported_at, report_attempts, "
        "attention_reason FROM equipment_failure"
    )
    assert len(rows) == plc["failures"]["posted"] == plan.failures, (
        f"{tag}: PLC posted {plc['failures']['posted']}, stored {len(rows)}, planned {plan.failures}"
    )
    assert plc["failures"]["acked"] <= len(rows), f"{tag}: more failures acked than stored"
    # Every event the PLC saw acknowledged (its own log, per event) is a stored row: no ack without storage.
    stored_events = {
        (code, text, local.strftime("%Y-%m-%d %H:%M:%S"))
        for code, text, local in s.sql("SELECT equipment_code, description, plc_time_local FROM equipment_failure")
    }
    unstored_events = [e for e in plc_failure_acks(plc_log) if e not in stored_events]
    assert not unstored_events, f"{tag}: the PLC took an ack for failure events never stored: {unstored_events}"
    parked: Counter[str] = Counter()
    for r in rows:
        assert r.acked_at is not None, f"{tag}: {r.event_id} stored but never acknowledged"
        date = r.plc_time_utc.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        same = [o for o in odoo_failures if o["equipment_code"] == r.equipment_code and o["date"] == date]
        if r.equipment_code not in MAP.equipment_codes or not r.description.strip():
            assert r.attention_reason is not None, f"{tag}: {r.event_id} Odoo can never accept, not parked: {r}"
            assert r.report_attempts == 0 and r.reported_at is None and not same, f"{tag}: posted to Odoo: {r}"
            parked[reason_kind(r.attention_reason)] += 1
            continue
        assert r.attention_reason is None, f"{tag}: failure {r.event_id} parked: {r.attention_reason}"
        assert len(same) == 1, f"{tag}: failure {r.event_id} ({r.equipment_code} {date}) in Odoo {len(same)}x"
    assert sum(parked.values()) == plan.unreportable_failures, f"{tag}: parked {parked}"
    assert len(odoo_failures) == len(rows) - sum(parked.values()), (
        f"{tag}: Odoo holds {len(odoo_failures)} failures, DB {len(rows)} of which {parked} parked"
    )
    return {
        "posted": plc["failures"]["posted"],
        "stored": len(rows),
        "acked": sum(1 for r in rows if r.acked_at is not None),
        "reported": sum(1 for r in rows if r.reported_at is not None),
        "parked": dict(parked),
        "acked_unstored": len(unstored_events),
    }


def reason_kind(text: str) -> str:
    """An attention reason without the numbers and names that differ per row, to count rows by reason."""
    text = re.sub(r"\s*\([^)]*\)", "", text)  # lists and details in parentheses
    text = re.sub(r"WH/MO/\d+", "<MO>", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text if len(text) <= 90 else text[:89] + "…"


def _check_weighings(s: System, plan: Plan, plc: dict[str, Any], plc_log: str) -> dict[str, Any]:
    """Manual weighings: every valid one the PLC posted is stored once, acknowledged on the PLC only after it
    was stored, reported once and booked in Odoo with exactly its kg; an invalid one is never stored or acked."""
    tag = f"seed={plan.seed}"
    rows = s.sql(
        "SELECT item, mo_id, product_id, kg, received_at, acked_at, reported_at, applied_kg, attention_reason "
        "FROM manual_weighing ORDER BY id"
    )
    on_plc = plc["weighings"]
    assert on_plc["posted"] == plan.weighings + plan.invalid_weighings, (
        f"{tag}: PLC posted {on_plc['posted']} weighings, planned {plan.weighings} + {plan.invalid_weighings} invalid"
    )
    assert on_plc["withdrawn"] == plan.invalid_weighings, f"{tag}: withdrawn {on_plc['withdrawn']}"
    acks = plc_weighing_acks(plc_log)
    assert len(acks) == on_plc["acked"], (
        f"{tag}: plc-sim logged {len(acks)} weighing acks, counted {on_plc['acked']}"
    )
    invalid_acked = [a for a in acks if not weighing_is_valid(a.product_id, float(a.kg))]
    invalid_stored = [r for r in rows if not weighing_is_valid(r.product_id, float(r.kg))]
    # Per item, the weighings the PLC saw taken and the rows stored are the same sequence: none acked without
    # its row (or before it was committed), none stored twice, none lost.
    stored = Counter((r.item, r.mo_id, r.product_id, f"{r.kg:.2f}") for r in rows)
    taken = Counter(a.content for a in acks)
    acked_unstored, doubled = taken - stored, stored - taken
    early: list[str] = []
    same_again = 0  # the identity rule's hard case: a weighing identical to the one its item held before
    for item in {r.item for r in rows} | {a.item for a in acks}:
        mine = [r for r in rows if r.item == item]
        content = [(r.mo_id, r.product_id, r.kg) for r in mine]
        same_again += sum(1 for before, now in itertools.pairwise(content) if before == now)
        for r, a in zip(mine, [a for a in acks if a.item == item], strict=False):
            if (r.mo_id, r.product_id, f"{r.kg:.2f}") != a.content[1:] or a.at < r.received_at:
                early.append(f"item {item}: PLC took {a} vs stored {r}")
    assert not invalid_acked and not invalid_stored, f"{tag}: invalid weighing {invalid_acked} {invalid_stored}"
    assert not acked_unstored and not doubled and not early, (
        f"{tag}: acked without storage {acked_unstored}, doubled {doubled}, out of order {early[:5]}"
    )
    assert len(rows) == plan.weighings == on_plc["acked"], (
        f"{tag}: stored {len(rows)}, planned {plan.weighings}, PLC saw {on_plc['acked']} acked"
    )
    for w in rows:
        assert w.acked_at is not None, f"{tag}: weighing stored but never acknowledged {w}"
        assert w.reported_at is not None and w.applied_kg == w.kg and w.attention_reason is None, f"{tag}: {w}"
    booked: dict[str, float] = {}
    for mo_id in sorted({w.mo_id for w in rows}):
        booked[mo_id] = odoo_product_consumption(s, mo_id, WEIGHED_PRODUCT)
        total = float(sum(w.kg for w in rows if w.mo_id == mo_id))
        assert booked[mo_id] == pytest.approx(total, abs=0.005), (
            f"{tag}: Odoo booked {booked[mo_id]} kg on {mo_id}, weighed {total} kg"
        )
    return {
        "posted": on_plc["posted"] - plan.invalid_weighings,
        "posted_invalid": plan.invalid_weighings,
        "stored": len(rows),
        "acked": on_plc["acked"],
        "reported": sum(1 for w in rows if w.reported_at),
        "stored_kg": round(float(sum(w.kg for w in rows)), 2),
        "applied_kg": round(sum(booked.values()), 2),
        "mos": len(booked),
        "same_item_again": same_again,
        "doubled": sum(doubled.values()),
        "acked_unstored": sum(acked_unstored.values()),
        "invalid_stored": len(invalid_stored),
        "invalid_acked": len(invalid_acked),
        "withdrawn": on_plc["withdrawn"],
        "attention": sum(1 for w in rows if w.attention_reason is not None),
    }
