"""fins-driver (an independent FINS client, MIT, tests only) reads and writes our simulator correctly.

It sends GCT 0x07, DA1 = 0 ("local PLC") and SA1 = 1 with SID 0: the simulator must accept all of that."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from fins import FinsClient as DriverClient

from simulators.plc.server import SimHandle, run_in_thread


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    handle = run_in_thread(seed=5)
    yield handle
    handle.stop()


@pytest.fixture
def driver(sim: SimHandle) -> Iterator[DriverClient]:
    client = DriverClient(host=sim.host, port=sim.port, timeout=5)
    client.connect()
    yield client
    client.close()


def test_driver_reads_what_the_simulator_holds(sim: SimHandle, driver: DriverClient) -> None:
    words = [(i * 2654435761) & 0xFFFF for i in range(77)]
    sim.write_memory(6000, words)
    resp = driver.memory_area_read("D6000", 77)
    assert resp.ok, resp.status_text
    assert resp.header.icf == b"\xc0" and resp.command_code == b"\x01\x01"
    assert list(struct.unpack(">77H", resp.raw_data)) == words
    # the armed simulator holds W = 1 at D7076
    assert driver.memory_area_read("D7076", 1).raw_data == b"\x00\x01"


def test_driver_writes_land_in_the_simulators_memory(sim: SimHandle, driver: DriverClient) -> None:
    words = [0x5748, 0x2F4D, 0x4F2F, 0x3030, 0x3031, 0x3400]  # "WH/MO/00014"
    resp = driver.memory_area_write("D12000", struct.pack(">6H", *words), 6)
    assert resp.ok, resp.status_text
    assert sim.read_memory(12000, 6) == words


def test_driver_multiple_read_and_error_end_code(sim: SimHandle, driver: DriverClient) -> None:
    sim.write_memory(15000, [11, 22, 33])
    resp = driver.multiple_memory_area_read("D15000", "D15002")
    assert resp.ok and resp.raw_data == bytes.fromhex("82000B820021")
    resp = driver.memory_area_read("D32767", 2)  # runs past the end of DM
    assert not resp.ok and resp.code == b"\x11\x04"
