"""Asyncio FINS/UDP client: one socket, a SID per request matched to its reply, bounded retries.

Transport rules (docs/fins.md F6, docs/architecture.md A3):
- Every attempt gets a fresh SID (1..255, rotating, skipping SIDs in flight or quarantined). A retransmission
  never reuses the SID of the attempt it replaces, so a late reply to attempt 1 cannot answer attempt 2.
- A SID that timed out is quarantined for `late_window` seconds: its late reply is dropped and counted, and the
  SID is not reused while such a reply may still arrive. Completed SIDs come back only after the other 254
  (rotation), so a duplicated reply is dropped as late too.
- Only datagrams from the PLC's address that parse as a reply to a SID in flight, with the right command,
  nodes and exact length, are accepted. Anything else is counted and dropped, never returned as data.
- Retries cover timeouts and the retryable end codes (0001, 0204, 0205), with a short backoff.
- One request in flight at a time (`max_in_flight`, default 1). FINS carries no checksum: the SID is the only
  link between a reply and its request. With one SID in flight, a reply under any other SID is never taken as
  data; with two, a corrupted reply whose SID happens to name the other request (same command, same size) is
  indistinguishable from its real reply. A CJ2M serves FINS at the end of its scan anyway, so pipelining buys
  little; a command waits behind at most one read, never behind a whole poll.

Writes are sent exactly once, never retransmitted by this layer: after a lost REPLY a retransmission would
land after the PLC may have consumed the first write (taken a flag, posted its next event, latched the next
batch) and acknowledge or re-arm something nobody verified. Whether to write again is the caller's decision,
made on a fresh read (services/plc_gateway/handshake.py). A write is one 0102 command: it never spans chunks,
so what the PLC sees is all of it or none of it.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from shared.fins import frames
from shared.fins.endcodes import EndCodeKind
from shared.fins.errors import FinsNotConnected, FinsProtocolError, FinsTimeout, end_code_error
from shared.fins.frames import ControllerData, ControllerStatus, CycleTime, Reply, Request, Route
from shared.fins.stats import FinsStats

SID_MIN, SID_MAX = 1, 255


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Reply]
    problem: str | None = None  # last invalid reply seen for this SID


@dataclass
class _Retired:
    until: float  # loop time
    blocks_reuse: bool  # timed out: a late reply may still come


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: FinsClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.client._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable...) carry no SID to match: they surface as timeouts.
        return


@dataclass(eq=False)
class FinsClient:
    """FINS/UDP client for one PLC. Use `async with FinsClient(...)` or `await open()` / `close()`."""

    host: str = "127.0.0.1"
    port: int = 9600
    dest_node: int = 1  # DA1: the PLC's FINS node
    dest_net: int = 0  # DNA
    dest_unit: int = 0  # DA2: 0 = CPU unit
    source_node: int = 10  # SA1: unique per client on the PLC's network
    source_net: int = 0
    source_unit: int = 0
    local_host: str = "0.0.0.0"
    local_port: int = 0  # 0 = ephemeral; 9600 when the PLC maps nodes statically
    timeout: float = 1.0  # seconds per attempt
    retries: int = 2  # extra attempts after the first
    chunk_words: int = 990
    gct: int = frames.DEFAULT_GCT
    late_window: float | None = None  # quarantine of timed-out SIDs; default max(2 s, 5 x timeout)
    retry_backoff: float = 0.05
    max_in_flight: int = 1
    stats: FinsStats = field(default_factory=FinsStats)

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_words <= frames.MAX_READ_WORDS:
            raise ValueError(f"chunk_words {self.chunk_words} outside 1..{frames.MAX_READ_WORDS}")
        if not 0 <= self.retries <= 20:
            raise ValueError(f"retries {self.retries} outside 0..20")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if not 1 <= self.max_in_flight <= 8:
            raise ValueError(f"max_in_flight {self.max_in_flight} outside 1..8")
        self._in_flight = asyncio.Semaphore(self.max_in_flight)
        self.route = Route(
            self.dest_net, self.dest_node, self.dest_unit, self.source_net, self.source_node, self.source_unit
        )
        self._window = self.late_window if self.late_window is not None else max(2.0, 5 * self.timeout)
        self._transport: asyncio.DatagramTransport | None = None
        self._peer: tuple[str, int] | None = None
        self._pending: dict[int, _Pending] = {}
        self._retired: dict[int, _Retired] = {}
        self._next_sid = SID_MIN

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
        if not infos:
            raise FinsNotConnected(f"cannot resolve {self.host}")
        ip, port = infos[0][4][:2]
        self._peer = (str(ip), int(port))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.local_host, self.local_port), family=socket.AF_INET
        )
        self._transport = transport

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(FinsNotConnected("client closed"))
        self._pending.clear()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    @property
    def local_address(self) -> tuple[str, int] | None:
        if self._transport is None:
            return None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # ------------------------------------------------------------------ public commands

    async def read_words(self, address: int, count: int, *, retries: int | None = None) -> list[int]:
        """DM words [address, address+count): one 0101 per `chunk_words` words, in order."""
        if count < 0:
            raise ValueError("count must be >= 0")
        words: list[int] = []
        for offset in range(0, count, self.chunk_words):
            n = min(self.chunk_words, count - offset)
            reply = await self._execute(
                frames.memory_area_read(address + offset, n), retries, f"D{address + offset}"
            )
            words.extend(frames.decode_words(reply.data))
        return words

    @property
    def max_write_words(self) -> int:
        """The largest write this client sends as one command (the chunk limit, within FINS's own)."""
        return min(self.chunk_words, frames.MAX_WRITE_WORDS)

    async def write_words(self, address: int, words: Sequence[int]) -> None:
        """Write DM words from `address` in ONE 0102 command, sent once (see the module docstring).

        Raises ValueError for a write larger than `max_write_words`: splitting it would make a block the PLC
        must see whole arrive in pieces.
        """
        if not 1 <= len(words) <= self.max_write_words:
            raise ValueError(f"a write of {len(words)} words is outside 1..{self.max_write_words} (one command)")
        await self._execute(frames.memory_area_write(address, list(words)), 0, f"D{address}")

    async def read_multiple(self, addresses: Sequence[int], *, retries: int | None = None) -> list[int]:
        """Scattered DM words with 0104 (up to 167 items per command), in the order given."""
        words: list[int] = []
        for offset in range(0, len(addresses), frames.MAX_MULTIPLE_ITEMS):
            part = list(addresses[offset : offset + frames.MAX_MULTIPLE_ITEMS])
            reply = await self._execute(frames.multiple_memory_area_read(part), retries, f"{len(part)} items")
            words.extend(frames.decode_multiple_read(reply.data, len(part)))
        return words

    async def controller_data(self, *, retries: int | None = None) -> ControllerData:
        reply = await self._execute(frames.controller_data_read(), retries, "controller data")
        return frames.decode_controller_data(reply.data)

    async def controller_status(self, *, retries: int | None = None) -> ControllerStatus:
        reply = await self._execute(frames.controller_status_read(), retries, "controller status")
        return frames.decode_controller_status(reply.data)

    async def cycle_time(self, *, retries: int | None = None) -> CycleTime:
        reply = await self._execute(frames.cycle_time_read(), retries, "cycle time")
        return frames.decode_cycle_time(reply.data)

    async def clock(self, *, retries: int | None = None) -> datetime.datetime:
        """The PLC's wall clock, naive (the plant's local time)."""
        reply = await self._execute(frames.clock_read(), retries, "clock")
        return frames.decode_clock(reply.data)

    # ------------------------------------------------------------------ request engine

    async def _execute(self, request: Request, retries: int | None, detail: str) -> Reply:
        transport, peer = self._transport, self._peer
        if transport is None or peer is None:
            raise FinsNotConnected("FINS client is not open")
        loop = asyncio.get_running_loop()
        attempts = 1 + (self.retries if retries is None else retries)
        problem: str | None = None
        self.stats.requests += 1
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            async with self._in_flight:  # released between attempts: other requests interleave
                sid = await self._allocate_sid(loop)
                pending = _Pending(request, loop.create_future())
                self._pending[sid] = pending
                frame = frames.encode_command(self.route, sid, request, gct=self.gct)
                # A timer on the future itself, not asyncio.wait_for: wait_for adds a waiter future, a callback
                # and an event-loop pass to every request (profiled: ~1/3 of the client's own cost).
                timer = loop.call_later(self.timeout, _expire, pending.future)
                sent = time.perf_counter()
                try:
                    transport.sendto(frame, peer)
                    reply = await pending.future
                except TimeoutError:
                    self.stats.timeouts += 1
                    problem = pending.problem or problem
                    self._retired[sid] = _Retired(loop.time() + self._window, blocks_reuse=True)
                    continue
                finally:
                    timer.cancel()
                    self._pending.pop(sid, None)
            self.stats.observe_rtt(time.perf_counter() - sent)
            self._retired[sid] = _Retired(loop.time() + self._window, blocks_reuse=False)
            end = reply.end_code
            if end.ok:
                if end.non_fatal_error:
                    self.stats.non_fatal_warnings += 1
                return reply
            self.stats.end_code_errors += 1
            if end.kind is EndCodeKind.RETRYABLE and attempt + 1 < attempts:
                await asyncio.sleep(self.retry_backoff * (2**attempt))
                continue
            self.stats.failures += 1
            raise end_code_error(end, command=request.command, detail=detail)
        self.stats.failures += 1
        if problem is not None:
            raise FinsProtocolError(
                f"command {request.command:04X} ({detail}): no valid reply in {attempts} attempts; "
                f"last invalid reply: {problem}"
            )
        raise FinsTimeout(
            f"command {request.command:04X} ({detail}): no reply from {peer[0]}:{peer[1]} node {self.dest_node} "
            f"in {attempts} attempts of {self.timeout:g}s",
            attempts=attempts,
        )

    async def _allocate_sid(self, loop: asyncio.AbstractEventLoop) -> int:
        deadline = loop.time() + self._window + self.timeout
        while True:
            now = loop.time()
            for _ in range(SID_MAX - SID_MIN + 1):
                sid = self._next_sid
                self._next_sid = SID_MIN if sid >= SID_MAX else sid + 1
                retired = self._retired.get(sid)
                if retired is not None and (retired.until <= now or not retired.blocks_reuse):
                    del self._retired[sid]
                    retired = None
                if sid not in self._pending and retired is None:
                    return sid
            if now > deadline:  # cannot happen with sane settings: 255 SIDs in flight or quarantined
                raise FinsTimeout("no free FINS SID: every SID is in flight or quarantined", attempts=0)
            await asyncio.sleep(0.01)

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self._peer is None or (str(addr[0]), int(addr[1])) != self._peer:
            self.stats.stray_datagrams += 1
            return
        try:
            reply = frames.parse_reply(data)
        except FinsProtocolError:
            self.stats.stray_datagrams += 1
            return
        sid = reply.header.sid
        pending = self._pending.get(sid)
        if pending is None or pending.future.done():
            retired = self._retired.get(sid)
            if retired is not None and retired.until > asyncio.get_running_loop().time():
                self.stats.late_replies += 1
            else:
                self.stats.stray_datagrams += 1
            return
        try:
            frames.validate_reply(reply, self.route, sid, pending.request)
        except FinsProtocolError as exc:
            self.stats.invalid_replies += 1
            pending.problem = str(exc)
            return
        self.stats.replies += 1
        pending.future.set_result(reply)
