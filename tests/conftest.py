from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Broker, fresh_database, start_mosquitto

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert REFERENCE.is_dir(), f"reference material expected at {REFERENCE}"
    return REFERENCE


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = start_mosquitto()
    yield b
    b.stop()


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
