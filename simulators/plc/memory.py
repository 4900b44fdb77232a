"""The simulated CJ2M data memory: D0..D32767, 16-bit words, all zero at power-up."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

DM_WORDS = 32768


class DataMemory:
    def __init__(self, size: int = DM_WORDS) -> None:
        self.size = size
        self._words = array("H", bytes(2 * size))

    def read(self, address: int, count: int) -> list[int]:
        self._check(address, count)
        return self._words[address : address + count].tolist()

    def write(self, address: int, words: Sequence[int]) -> None:
        self._check(address, len(words))
        for w in words:
            if not 0 <= w <= 0xFFFF:
                raise ValueError(f"word {w} is not an unsigned 16-bit value")
        self._words[address : address + len(words)] = array("H", words)

    def get(self, address: int) -> int:
        self._check(address, 1)
        return self._words[address]

    def set(self, address: int, value: int) -> None:
        self.write(address, [value])

    def clear(self) -> None:
        self._words = array("H", bytes(2 * self.size))

    def _check(self, address: int, count: int) -> None:
        if address < 0 or count < 0 or address + count > self.size:
            raise IndexError(f"D{address}+{count} is outside D0..D{self.size - 1}")
