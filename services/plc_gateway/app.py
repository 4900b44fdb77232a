"""plc_gateway: the only process that speaks FINS. Polls the mapped areas, publishes snapshots, executes
commands from MQTT one at a time. paho's thread only hands messages over to the asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared import __version__
from shared.config import ConfigError
from shared.fins.client import FinsClient
from shared.fins.errors import FinsError, FinsTimeout
from shared.health import readiness, start_health_server
from shared.mqtt.client import Delivery, Message, MqttLink, Route
from shared.mqtt.payloads import (
    AckFailure,
    AckSlot,
    AckWeighing,
    Arm,
    CommandBase,
    CommandReply,
    PayloadError,
    ReadArea,
    WriteBatch,
    command_args,
    parse_command,
    request_id_of,
)
from shared.mqtt.status import PlcLinkStatus, StatusDetails
from shared.plc.memory_map import AreaName, MemoryMap, load_memory_map, with_active_slots
from shared.plc.snapshot import decode_area

from . import handshake
from .area_poll import BlockAssembler, area_topic, plan_reads
from .handshake import PlcIO, Reply, WriteNotAllowed
from .metrics import GatewayMetrics
from .plc_diag import PlcDiagnostics
from .publisher import SnapshotTracker, snapshot_message
from .settings import GatewaySettings
from .turns import CommandsFirst
from .weighing_journal import JournalError, WeighingJournal

log = logging.getLogger("plc_gateway")
SERVICE = "plc_gateway"
MAX_BACKOFF_S = 2.0
# Replies not cached by request id: a resend of the same request runs again (see handle()).
RUN_AGAIN_CODES = frozenset({"plc_unreachable", "plc_error", "gateway_error"})


C = TypeVar("C", bound=CommandBase)
Run = Callable[[PlcIO, MemoryMap], Awaitable[Reply]]


@dataclass(frozen=True)
class GatewayCommand(Generic[C]):
    """A command's payload model and its handshake, bound together so a parsed command reaches exactly its
    own runner (typed, no cast)."""

    model: type[C]
    runner: Callable[[PlcIO, MemoryMap, C], Awaitable[Reply]]

    def parse(self, raw: bytes) -> tuple[CommandBase, Run]:
        """The command and its run against the PLC; raises PayloadError with a reason."""
        cmd = parse_command(self.model, raw)
        runner = self.runner
        return cmd, lambda io, m: runner(io, m, cmd)


def _table(*commands: GatewayCommand[Any]) -> dict[str, GatewayCommand[Any]]:
    return {c.model.command: c for c in commands}


def command_table(journal: WeighingJournal) -> dict[str, GatewayCommand[Any]]:
    """The gateway's one command table: name (from the model) -> payload model -> handshake. The topics it
    subscribes come from here; COMMAND_SENDERS (who may send each, shared/mqtt/topics.py) must name exactly
    these. ack_weighing also needs the weighing journal (weighing_journal.py)."""

    async def ack_weighing(io: PlcIO, m: MemoryMap, cmd: AckWeighing) -> Reply:
        return await handshake.ack_weighing(io, m, cmd, journal)

    return _table(
        GatewayCommand(WriteBatch, handshake.write_batch),
        GatewayCommand(AckSlot, handshake.ack_slot),
        GatewayCommand(AckFailure, handshake.ack_failure),
        GatewayCommand(AckWeighing, ack_weighing),
        GatewayCommand(Arm, handshake.arm),
        GatewayCommand(ReadArea, handshake.read_area),
    )


def load_map(settings: GatewaySettings) -> MemoryMap:
    return with_active_slots(load_memory_map(settings.plc_map), settings.plc_slots)


class Gateway:
    def __init__(self, settings: GatewaySettings, memory_map: MemoryMap) -> None:
        self.settings = settings
        self.map = memory_map
        self.topics = settings.topics
        self.metrics = GatewayMetrics()
        self.tracker = SnapshotTracker(settings.heartbeat_s)
        self.replies: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.plc_reachable: bool | None = None
        self.last_poll_ok: float | None = None
        self.last_cycle_at = time.monotonic()
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: asyncio.Queue[Message] = asyncio.Queue()
        try:
            self.commands = command_table(WeighingJournal(settings.gateway_state_dir))
        except JournalError as exc:
            raise ConfigError(str(exc)) from exc
        self.link = MqttLink(
            address=settings.broker(),
            client_id=settings.client_id(SERVICE),
            status_topic=self.topics.gateway_status,
            source=SERVICE,
            routes=[Route(self.topics.cmd(name), self._commands.put_nowait) for name in self.commands],
            deliver=self._to_loop,
            on_connected=self._on_connected,
            birth=self._status_body(),
        )
        # A poll waits for a running command at most one poll period: commands first, the poll never starved.
        self.turns = CommandsFirst(settings.poll_interval_ms / 1000)
        self.poll_plan = plan_reads(self.map, settings.fins_chunk_words, per_slot=settings.poll_mode == "slot")
        self.fins = FinsClient(
            host=settings.plc_host,
            port=settings.plc_port,
            dest_node=settings.plc_node,
            dest_net=settings.plc_network,
            dest_unit=settings.plc_unit,
            source_node=settings.gateway_node,
            local_port=settings.fins_local_port,
            timeout=settings.fins_timeout_ms / 1000,
            retries=settings.fins_retries,
            chunk_words=settings.fins_chunk_words,
        )
        if self.fins.max_write_words < memory_map.largest_write_words():
            # A smaller chunk would split the WRITE slot block, which the PLC must see whole, into pieces.
            raise ConfigError(
                f"FINS_CHUNK_WORDS={settings.fins_chunk_words} is below the largest write of the memory map "
                f"({memory_map.largest_write_words()} words); set it to at least that"
            )
        self.diagnostics = PlcDiagnostics(
            self.fins,
            self.metrics.registry,
            interval_s=settings.plc_diag_interval_s,
            max_clock_offset_s=settings.plc_clock_max_offset_s,
            timezone=settings.plant_timezone,
            publish_event=lambda event: self.link.publish_json(self.topics.gateway_events, event.wire()),
            on_change=self.publish_status,
            source=SERVICE,
            ready=lambda: self.link.connected.is_set() and self.plc_reachable is not None,
            wait_turn=self.turns.turn,
        )

    # ------------------------------------------------------------------ paho thread -> loop

    def _to_loop(self, delivery: Delivery) -> None:
        """paho's thread: the route's handler (queueing the command) runs on the asyncio loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(delivery.run)

    def _on_connected(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.tracker.force_all)

    # ------------------------------------------------------------------ status

    def _status_body(self) -> StatusDetails:
        # Also built for the MQTT birth message, before the FINS client and the diagnostics exist.
        stats = getattr(self, "fins", None)
        diagnostics = getattr(self, "diagnostics", None)
        rtt = None
        if stats is not None and stats.stats.rtt_p50 is not None:
            rtt = round(stats.stats.rtt_p50 * 1000, 3)
        plc = PlcLinkStatus(
            host=self.settings.plc_host,
            port=self.settings.plc_port,
            node=self.settings.plc_node,
            reachable=bool(self.plc_reachable),
            rtt_ms=rtt,
            last_error=self.last_error,
        )
        if diagnostics is not None:
            diag, alarms = diagnostics.status()
            plc = plc.model_copy(update={"diagnostics": diag, "alarms": alarms})
        return StatusDetails(
            version=__version__,
            map_version=self.map.version,
            slots=self.map.active_slots,
            poll_interval_ms=self.settings.poll_interval_ms,
            plc=plc,
        )

    def publish_status(self) -> None:
        self.link.publish_status(self._status_body())

    def health(self) -> dict[str, Any]:
        stalled = time.monotonic() - self.last_cycle_at > max(10.0, 20 * self.settings.poll_interval_ms / 1000)
        mqtt_ok = self.link.connected.is_set()
        # An unreachable PLC makes the gateway not ready (nothing can be dosed), but it keeps polling: a
        # restart would not help, and the PLC coming back clears the problem by itself.
        return readiness(
            {
                "broker": None if mqtt_ok else "not connected",
                "plc": None if self.plc_reachable else f"unreachable ({self.last_error or 'no reply yet'})",
                "loop": "poll loop stalled" if stalled else None,
            },
            mqtt_connected=mqtt_ok,
            poll_loop_stalled=stalled,
            plc_reachable=bool(self.plc_reachable),
        )

    # ------------------------------------------------------------------ polling

    async def poll_once(self) -> None:
        """One poll: three FINS reads (see area_poll.py); commands run between the reads."""
        assembler = BlockAssembler(self.map)
        for read in self.poll_plan:
            await self.turns.turn()
            started = time.perf_counter()
            if read.addresses:
                words = await self.fins.read_multiple(read.addresses)
            else:
                words = await self.fins.read_words(read.address, read.count)
            self.metrics.fins_rtt.observe(time.perf_counter() - started)
            for area, slot, block in assembler.add(read, words):
                self._publish_block(area, slot, block)

    def _publish_block(self, area: AreaName, slot: int, words: list[int]) -> None:
        topic = area_topic(self.topics, self.map, area, slot)
        snap = decode_area(self.map, area, slot, words)
        decision = self.tracker.observe(topic, snap, time.monotonic())
        if decision is None:
            return
        changed, heartbeat, seq = decision
        if changed and not snap.valid:
            self.metrics.invalid_snapshots.labels(area).inc()
            log.warning(
                "invalid snapshot rejected",
                extra={"area": area, "slot": slot, "errors": list(snap.errors[:5])},
            )
        message = snapshot_message(snap, seq, heartbeat, SERVICE)
        if message.valid != snap.valid:  # a decoder bug: published as invalid, with the reason
            log.error("decoded snapshot does not fit its message", extra={"area": area, "errors": message.errors})
        if self.link.publish_json(topic, message.wire(), retain=True):
            self.metrics.published.labels(area).inc()
        else:
            self.tracker.forget(topic)  # not delivered: publish again once the broker is back

    async def poll_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.poll_interval_ms / 1000
        delay = interval
        last_status = 0.0
        while not stop.is_set():
            cycle_start = time.monotonic()
            try:
                await self.poll_once()
                took = time.monotonic() - cycle_start
                self.metrics.poll_seconds.observe(took)
                if took > interval:
                    self.metrics.poll_overruns.inc()
                self.tracker.end_cycle()
                self.metrics.polls.inc()
                self.last_poll_ok = time.monotonic()
                self._set_reachable(True, None)
                delay = interval
            except FinsError as exc:
                kind = "timeout" if isinstance(exc, FinsTimeout) else "plc_error"
                self.metrics.poll_errors.labels(kind).inc()
                self._set_reachable(False, f"{kind}: {exc}")
                delay = min(max(delay * 2, interval), MAX_BACKOFF_S)
            self._sync_fins_metrics()
            self.last_cycle_at = time.monotonic()
            if self.last_cycle_at - last_status >= self.settings.heartbeat_s:
                self.publish_status()
                last_status = self.last_cycle_at
            sleep = max(0.0, delay - (time.monotonic() - cycle_start))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=sleep)

    def _set_reachable(self, reachable: bool, error: str | None) -> None:
        changed = self.plc_reachable is not reachable
        self.plc_reachable = reachable
        self.last_error = error
        self.metrics.plc_reachable.set(1 if reachable else 0)
        if changed:
            (log.info if reachable else log.error)(
                "PLC reachable" if reachable else "PLC unreachable", extra={"error": error}
            )
            self.publish_status()

    def _sync_fins_metrics(self) -> None:
        s = self.fins.stats
        self.metrics.fins_timeouts.set(s.timeouts)
        self.metrics.fins_retries.set(s.retries)
        self.metrics.fins_dropped.set(s.late_replies + s.stray_datagrams)

    # ------------------------------------------------------------------ commands

    async def command_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            get = asyncio.ensure_future(self._commands.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({get, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if get not in done:
                get.cancel()
                return
            await self.handle(get.result())

    async def handle(self, msg: Message) -> None:
        name = msg.topic.rsplit("/", 1)[-1]
        try:
            if name not in self.commands:
                raise PayloadError("unknown_command", f"unknown command {name!r}")
            cmd, run = self.commands[name].parse(msg.payload)
        except PayloadError as exc:
            self._reply(name, request_id_of(msg.payload), None, Reply(False, exc.code, str(exc)))
            return
        reply_to = cmd.reply_to if cmd.reply_to and self.topics.reply_to_allowed(name, cmd.reply_to) else None
        if cmd.reply_to and reply_to is None:
            self._reply(
                name,
                cmd.request_id,
                None,
                Reply(False, "invalid_payload", f"reply_to is not the reply topic of a sender of {name}"),
            )
            return
        cached = self.replies.get((name, cmd.request_id))
        if cached is not None:
            self.metrics.commands.labels(name, "duplicate").inc()
            self.link.publish_json(reply_to or self.topics.cmd_reply(name), {**cached, "duplicate": True})
            return
        if cmd.expired():
            self._reply(
                name, cmd.request_id, reply_to, Reply(False, "expired", "command arrived after expires_at")
            )
            return
        reply = await self._execute(run)
        # A PLC that did not answer (or refused mid-way) is not an answer to cache: the sender resends the
        # same request to settle it, and every runner reads the PLC first, so running it again is safe.
        cache = reply.code not in RUN_AGAIN_CODES
        self._reply(name, cmd.request_id, reply_to, reply, cache=cache, args=command_args(cmd))

    async def _execute(self, run: Run) -> Reply:
        try:
            async with self.turns.command():  # the poll and diagnostics wait while this command runs
                return await run(self.fins, self.map)
        except JournalError as exc:
            # The disk under GATEWAY_STATE_DIR failed: no weighing is acknowledged without its journal entry.
            log.error("weighing journal failed", extra={"error": str(exc)})
            return Reply(False, "gateway_error", str(exc))
        except WriteNotAllowed as exc:
            log.error("write outside the memory map refused", extra={"error": str(exc)})
            return Reply(False, "not_allowed", str(exc))
        except FinsTimeout as exc:
            return Reply(False, "plc_unreachable", f"PLC did not answer: {exc}")
        except FinsError as exc:
            return Reply(False, "plc_error", f"PLC refused: {exc}")

    def _reply(
        self,
        name: str,
        request_id: str | None,
        reply_to: str | None,
        reply: Reply,
        cache: bool = False,
        args: dict[str, Any] | None = None,
    ) -> None:
        body = CommandReply(
            request_id=request_id,
            command=name,
            args=args or {},
            ok=reply.ok,
            code=reply.code,
            message=reply.message,
            **reply.details,
        ).model_dump(mode="json", exclude={"duplicate"})
        if cache and request_id is not None:
            self.replies[(name, request_id)] = body
            while len(self.replies) > self.settings.reply_cache_size:
                self.replies.popitem(last=False)
        self.metrics.commands.labels(name, reply.code).inc()
        (log.info if reply.ok else log.warning)(
            "command done",
            extra={"command": name, "request_id": request_id, "code": reply.code, "detail": reply.message},
        )
        self.link.publish_json(reply_to or self.topics.cmd_reply(name), body)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        await self.fins.open()
        health = start_health_server(
            self.settings.health_port, self.metrics.registry, self.health, self.settings.health_host
        )
        self.link.start()
        log.info(
            "gateway started",
            extra={
                "plc": f"{self.settings.plc_host}:{self.settings.plc_port}",
                "map_version": self.map.version,
                "slots": self.map.active_slots,
            },
        )
        try:
            await asyncio.gather(self.poll_loop(stop), self.command_loop(stop), self.diagnostics.loop(stop))
        finally:
            self.link.stop()
            self.fins.close()
            if health:
                health.stop()
            log.info("gateway stopped")
