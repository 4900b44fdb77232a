"""Our FINS client against the simulator over real UDP on loopback: data, chunking, end codes, faults."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from shared.fins import frames
from shared.fins.client import FinsClient
from shared.fins.errors import (
    FinsAddressError,
    FinsModeError,
    FinsNotConnected,
    FinsRetryableError,
    FinsTimeout,
    FinsUnsupportedError,
)
from simulators.plc.server import SimHandle, run_in_thread

PLANT_BASE, PLANT_WORDS = 100, 3000  # a region the PLC program never touches


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    handle = run_in_thread(seed=3)
    rng = random.Random(42)
    handle.write_memory(PLANT_BASE, [rng.randrange(0x10000) for _ in range(PLANT_WORDS)])
    yield handle
    handle.stop()


def client_for(sim: SimHandle, **kw: object) -> FinsClient:
    settings: dict[str, object] = {"host": sim.host, "port": sim.port, "dest_node": sim.node, "timeout": 0.5}
    settings.update(kw)
    return FinsClient(**settings)  # type: ignore[arg-type]


def test_read_write_chunking_multiple_and_controller(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim, chunk_words=990) as c:
            words = await c.read_words(PLANT_BASE, 2500)  # 990 + 990 + 520: three commands
            assert words == sim.read_memory(PLANT_BASE, 2500)
            assert c.stats.requests == 3 and c.stats.replies == 3
            block = [(i * 7919) & 0xFFFF for i in range(990)]
            await c.write_words(20000, block)  # one command, the chunk limit
            assert sim.read_memory(20000, 990) == block
            assert await c.read_words(20000, 990) == block
            with pytest.raises(ValueError, match="one command"):
                await c.write_words(20000, [*block, 1])  # never split into pieces the PLC sees apart
            addresses = list(range(PLANT_BASE, PLANT_BASE + 400, 2))  # 200 items: two 0104 commands
            expect = [sim.read_memory(a, 1)[0] for a in addresses]
            assert await c.read_multiple(addresses) == expect
            assert await c.read_words(6000, 0) == []
            data = await c.controller_data()
            assert data.model == "CJ2M-CPU33"
            status = await c.controller_status()
            assert status.running and status.mode_name == "RUN"
            assert c.stats.timeouts == 0 and c.stats.late_replies == 0 and c.stats.rtt_p99 is not None

    asyncio.run(scenario())


def test_concurrent_requests_each_get_their_own_reply(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim) as c:
            starts = [PLANT_BASE + 11 * i for i in range(120)]
            results = await asyncio.gather(*(c.read_words(s, 1 + i % 40) for i, s in enumerate(starts)))
            for i, (s, got) in enumerate(zip(starts, results, strict=True)):
                assert got == sim.read_memory(s, 1 + i % 40)

    asyncio.run(scenario())


def test_loss_duplicates_and_wrong_sids_never_yield_wrong_data(sim: SimHandle) -> None:
    """20% loss (requests and replies), duplicated replies and wrong-SID replies with corrupted data."""
    sim.set_faults(drop=0.1, drop_reply=0.1, duplicate=0.2, wrong_sid=0.1)
    rng = random.Random(5)

    async def scenario() -> None:
        async with client_for(sim, timeout=0.05, retries=12) as c:
            for _ in range(300):
                start = PLANT_BASE + rng.randrange(PLANT_WORDS - 80)
                count = rng.randrange(1, 78)
                got = await c.read_words(start, count)
                assert got == sim.read_memory(start, count), f"wrong data for D{start}+{count}"
            s = c.stats
            assert s.timeouts > 0 and s.retries > 0 and s.failures == 0
            assert s.late_replies + s.stray_datagrams > 0  # duplicates and wrong SIDs were seen and dropped

    asyncio.run(scenario())
    counters = sim.state()["fins"]
    assert counters["dropped_requests"] > 0 and counters["duplicates"] > 0 and counters["wrong_sid"] > 0


def test_a_corrupted_reply_under_another_requests_sid_is_never_data() -> None:
    """FINS has no checksum: the SID alone ties a reply to its request. A hostile PLC (real UDP) answers a
    request with corrupted data under the SID of another request it holds, as soon as it holds two. The
    client keeps one request in flight, so such a reply never names a request it waits for."""
    plc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plc.bind(("127.0.0.1", 0))
    plc.settimeout(0.02)
    held: list[tuple[frames.Header, int, bytes, tuple[str, int]]] = []
    stop = threading.Event()
    good = bytes(range(8))

    def serve() -> None:
        while not stop.is_set():
            try:  # like a PLC's scan: collect what arrives within 20 ms, then answer
                raw, addr = plc.recvfrom(2048)
                held.append((*frames.parse_command(raw), addr))
                if len(held) < 2:
                    continue
            except TimeoutError:
                pass
            if len(held) >= 2:  # two requests in flight: answer the first under the second's SID, corrupted
                (first, cmd, _, addr), (second, _, _, _) = held[0], held[1]
                forged = replace(first.reply_header(1), sid=second.sid)
                plc.sendto(frames.encode_reply(forged, cmd, 0, bytes(b ^ 0x5A for b in good)), addr)
            for header, cmd, _, addr in held:  # then the honest replies
                plc.sendto(frames.encode_reply(header.reply_header(1), cmd, 0, good), addr)
            held.clear()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def scenario() -> None:
        async with FinsClient(port=plc.getsockname()[1], dest_node=1, timeout=0.5) as c:
            results = await asyncio.gather(*(c.read_words(PLANT_BASE, 4) for _ in range(20)))
        assert all(r == frames.decode_words(good) for r in results), results

    try:
        asyncio.run(scenario())
    finally:
        stop.set()
        thread.join(2)
        plc.close()


def test_a_write_is_sent_once_even_when_its_reply_is_lost(sim: SimHandle) -> None:
    """A lost write reply is a timeout for the caller, never a retransmission: the PLC may have consumed the
    first write (taken a flag and posted its next event) before a second copy would land."""
    sim.set_faults(drop_reply=1.0)

    async def scenario() -> None:
        async with client_for(sim, timeout=0.05, retries=5) as c:
            before = sim.state()["fins"]
            with pytest.raises(FinsTimeout) as info:
                await c.write_words(20000, [4242])
            assert info.value.attempts == 1
            assert sim.read_memory(20000, 1) == [4242]  # the write landed; only its reply was lost
            writes = sim.state()["fins"]
            assert c.stats.retries == 0
            assert writes.get("requests", 0) - before.get("requests", 0) == 1

    asyncio.run(scenario())


def test_late_replies_are_dropped_and_counted(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim, timeout=0.05, retries=1) as c:
            sim.set_faults(delay_ms=200)
            with pytest.raises(FinsTimeout) as info:
                await c.read_words(PLANT_BASE, 10)
            assert info.value.attempts == 2
            sim.set_faults(delay_ms=0)
            await asyncio.sleep(0.4)  # both late replies arrive now
            assert c.stats.late_replies == 2 and c.stats.timeouts == 2 and c.stats.replies == 0
            assert await c.read_words(PLANT_BASE, 10) == sim.read_memory(PLANT_BASE, 10)

    asyncio.run(scenario())


def test_end_codes_map_to_errors(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim) as c:
            with pytest.raises(FinsAddressError) as e1:
                await c.read_words(32760, 20)  # runs past D32767
            assert e1.value.code == 0x1104
            with pytest.raises(FinsAddressError) as e2:
                await c.read_words(40000, 1)
            assert e2.value.code == 0x1103
            sim.set_faults(end_code=0x0204, end_code_count=1)  # busy once: retried, then fine
            assert await c.read_words(PLANT_BASE, 3) == sim.read_memory(PLANT_BASE, 3)
            assert c.stats.retries == 1
            sim.set_faults(end_code=0x0204, end_code_count=10)
            with pytest.raises(FinsRetryableError):
                await c.read_words(PLANT_BASE, 3, retries=2)
            sim.set_faults(end_code=0x0401, end_code_count=1)
            with pytest.raises(FinsUnsupportedError):
                await c.read_words(PLANT_BASE, 3, retries=5)  # not retryable: fails at once
            sim.set_faults(end_code=0, end_code_count=0, program_mode=True)
            assert (await c.controller_status()).mode_name == "PROGRAM"
            with pytest.raises(FinsModeError) as e3:
                await c.write_words(20000, [1])
            assert e3.value.code == 0x2203
            assert await c.read_words(PLANT_BASE, 2) == sim.read_memory(PLANT_BASE, 2)  # reads still work
            assert c.stats.end_code_errors >= 6

    asyncio.run(scenario())


def test_no_plc_means_timeout_and_closed_client_refuses() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]

        async def scenario() -> None:
            c = FinsClient(port=port, timeout=0.05, retries=2)
            with pytest.raises(FinsNotConnected):
                await c.read_words(0, 1)
            async with c:
                with pytest.raises(FinsTimeout, match="3 attempts"):
                    await c.read_words(6000, 77)
            assert c.stats.timeouts == 3 and c.stats.retries == 2 and c.stats.failures == 1
            with pytest.raises(FinsNotConnected):
                await c.read_words(0, 1)

        asyncio.run(scenario())


def test_datagrams_from_strangers_are_dropped(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim) as c:
            addr = c.local_address
            assert addr is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                # a perfectly shaped reply, but not from the PLC's address
                stranger.sendto(bytes.fromhex("C000020000A0000100010101000000010002"), ("127.0.0.1", addr[1]))
            await asyncio.sleep(0.05)
            assert c.stats.stray_datagrams == 1
            assert await c.read_words(PLANT_BASE, 4) == sim.read_memory(PLANT_BASE, 4)

    asyncio.run(scenario())


def test_sids_rotate_past_255_without_confusion(sim: SimHandle) -> None:
    async def scenario() -> None:
        async with client_for(sim) as c:
            for i in range(600):
                start = PLANT_BASE + i
                assert await c.read_words(start, 2) == sim.read_memory(start, 2)
            assert c.stats.requests == 600 and c.stats.stray_datagrams == 0

    asyncio.run(scenario())
