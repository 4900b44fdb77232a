"""requirements.lock (issue 13, defect 7): every dependency pinned, and the test venv runs the pinned versions
(the image installs with the same file, so images and tests use the same libraries)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not pinned with ==: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def _names(requirements: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]).lower() for r in requirements}


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["test"])
    assert not wanted - set(_lock())


def test_this_environment_runs_the_locked_versions() -> None:
    for name, version in _lock().items():
        assert metadata.version(name) == version, name


def test_image_and_bootstrap_install_with_the_lock() -> None:
    assert "-c requirements.lock" in (REPO / "Dockerfile").read_text()
    assert 'requirements.lock" -e' in (REPO / "scripts" / "_bootstrap.sh").read_text()
