"""Commands first on the PLC link (services/plc_gateway/turns.py): the poll and the diagnostics wait while a
command runs, never longer than the bound, and not at all when no command runs."""

from __future__ import annotations

import asyncio

import pytest

from services.plc_gateway.turns import CommandsFirst


def test_a_turn_is_free_when_no_command_runs() -> None:
    async def go() -> None:
        turns = CommandsFirst(1.0)
        await asyncio.wait_for(turns.turn(), 0.05)
        assert turns.waited == 0 and not turns.command_running

    asyncio.run(go())


def test_the_poll_waits_for_the_whole_command() -> None:
    async def go() -> list[str]:
        turns = CommandsFirst(5.0)
        order: list[str] = []

        async def command() -> None:
            async with turns.command():
                for i in range(3):  # three FINS requests of one command
                    order.append(f"cmd{i}")
                    await asyncio.sleep(0.01)

        async def poll() -> None:
            await asyncio.sleep(0.005)  # arrives while the command runs
            for i in range(2):
                await turns.turn()
                order.append(f"poll{i}")
                await asyncio.sleep(0.01)

        await asyncio.gather(command(), poll())
        assert turns.waited == 1
        return order

    assert asyncio.run(go()) == ["cmd0", "cmd1", "cmd2", "poll0", "poll1"]


def test_the_wait_is_bounded() -> None:
    async def go() -> float:
        turns = CommandsFirst(0.05)
        release = asyncio.Event()

        async def stuck_command() -> None:
            async with turns.command():
                await release.wait()

        task = asyncio.create_task(stuck_command())
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await turns.turn()
        waited = loop.time() - start
        assert turns.command_running
        release.set()
        await task
        assert not turns.command_running
        return waited

    assert 0.04 <= asyncio.run(go()) < 1.0


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CommandsFirst(0)
