from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.servers import Broker, fresh_database, start_mosquitto

# Fixtures that live with their helpers (the plc-sim process), available to every test without an import.
pytest_plugins = ["tests.support.plcsim"]

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"

# Property tests assert behaviour, not speed: on a loaded 2-core CI box one example can take longer than
# hypothesis' 200 ms default deadline, which would fail a correct test (performance lives in benchmarks/).
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


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
