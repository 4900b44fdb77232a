"""The repository stands alone (issue 11.8): code and docs cite `docs/`, never documents outside the repository.

1. No *.py or *.md file (nor a config file: YAML, TOML, shell, the broker's files) cites the outside reference
   documents (the Odoo API notes, the plant/middleware notes, the FINS/MQTT notes, the design card) or a path
   into the `shared` folder beside the repository in prose. The facts the code depends on live in
   `docs/odoo-api.md`, `docs/plc-program.md`, `docs/fins.md` and `docs/architecture.md`.
2. Every `docs/<file>.md <section>` citation names a file that exists and, when it names a section label
   (`O4.4`, `P2`, `F6`, `A8`), a section that exists in that file.
3. A bare Odoo section label (`O4.6`) in a file that cites `docs/odoo-api.md` names an existing section too.

Test data may still be loaded from outside the repository (the recorded PLC memory and Odoo replies); that code
builds the path from parts (`REPO.parent / "shared" / ...`) and cites nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"__pycache__", "node_modules"}  # plus every hidden directory (.venv, .git, caches)
TEXT = (".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".ini", ".cfg", ".conf", ".example", "acl", "Dockerfile")

# Names assembled from parts so this file does not cite them itself.
_MD = ".md"
FORBIDDEN = [
    re.compile(re.escape("odoo-scada-api" + _MD)),
    re.compile(re.escape("plant-and-earlier-middleware" + _MD)),
    re.compile(re.escape("fins-and-mqtt" + _MD)),
    re.compile(re.escape("ARCHITECTURE" + _MD)),
    re.compile(re.escape("../" + "shared/")),
    re.compile("ARCHITECTURE" + r" (?:\u00a7|section )?\d"),  # the design card's sections
    re.compile("reference" + r" [A-F]\d+\b"),  # the FINS/MQTT notes' sections (A6, C2, ...)
    re.compile("\u00a7"),  # section sign: every such citation pointed outside the repository
]

# (relative path, exact text of the line) allowed to keep an outside path: a user-facing help string that says
# where the simulator's default seed data is loaded from (`simulators/odoo/domain.py` DEFAULT_SEED).
ALLOWED = {
    (
        "simulators/odoo/__main__.py",
        "\"(default: the plant's recorded reply in ../" + 'shared/reference when it is there)",',
    ),
}

CITATION = re.compile(
    r"docs/([A-Za-z0-9_-]+\.md)(?:\s+((?:[A-Z]\d+(?:\.\d+)?)(?:\s*[-,/]\s*[A-Z]?\d+(?:\.\d+)?)*))?"
)
LABEL = re.compile(r"[A-Z]?\d+(?:\.\d+)?")
HEADING = re.compile(r"^#{2,6}\s+([A-Z]\d+(?:\.\d+)?)\.?\s", re.MULTILINE)
BARE_ODOO = re.compile(r"(?<![\w./-])O(\d+(?:\.\d+)?)(?![\w.]*\w)")


def _files(suffixes: tuple[str, ...]) -> Iterator[Path]:
    for root, dirs, names in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(names):
            if name.endswith(suffixes):
                yield Path(root) / name


@cache
def _sections(doc: str) -> frozenset[str]:
    path = REPO / "docs" / doc
    return frozenset(HEADING.findall(path.read_text(encoding="utf-8"))) if path.is_file() else frozenset()


def _section_exists(doc: str, label: str) -> bool:
    """``O4.4`` needs its own heading; ``O7.7`` (an item of a section without sub-headings) needs ``O7``."""
    labels = _sections(doc)
    if label in labels:
        return True
    parent = label.split(".")[0]
    return "." in label and parent in labels and not any(s.startswith(parent + ".") for s in labels)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_no_file_cites_documents_outside_the_repository() -> None:
    found = []
    for path in _files(TEXT):
        rel = _rel(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if (rel, line.strip()) in ALLOWED:
                continue
            if any(pattern.search(line) for pattern in FORBIDDEN):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, (
        "cite docs/ instead (docs/odoo-api.md, plc-program.md, fins.md, architecture.md):\n" + "\n".join(found)
    )


def test_the_allow_list_is_still_needed() -> None:
    """An allowed line that is gone (or changed) must leave the allow-list too."""
    for rel, text in ALLOWED:
        lines = [line.strip() for line in (REPO / rel).read_text(encoding="utf-8").splitlines()]
        assert text in lines, f"{rel}: allowed line no longer present, remove it from ALLOWED"


def test_every_docs_citation_points_at_an_existing_file_and_section() -> None:
    broken = []
    cited = 0
    for path in _files(TEXT):
        if path == Path(__file__).resolve():
            continue
        rel = _rel(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in CITATION.finditer(line):
                cited += 1
                doc, labels = match.group(1), match.group(2)
                if not (REPO / "docs" / doc).is_file():
                    broken.append(f"{rel}:{number}: docs/{doc} does not exist")
                    continue
                prefix = ""
                for label in LABEL.findall(labels or ""):
                    prefix = label[0] if label[0].isalpha() else prefix
                    full = label if label[0].isalpha() else prefix + label
                    if not _section_exists(doc, full):
                        broken.append(f"{rel}:{number}: docs/{doc} has no section {full}")
    assert cited > 50, f"only {cited} docs/ citations found: is the scan looking at the right tree?"
    assert not broken, "\n".join(broken)


def test_bare_odoo_labels_name_existing_sections_of_the_odoo_page() -> None:
    broken = []
    for path in _files((".py",)):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        if "docs/odoo-api.md" not in text:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in BARE_ODOO.finditer(line):
                if not _section_exists("odoo-api.md", "O" + match.group(1)):
                    broken.append(f"{_rel(path)}:{number}: docs/odoo-api.md has no section O{match.group(1)}")
    assert not broken, "\n".join(broken)


def test_the_docs_pages_the_code_relies_on_have_their_sections() -> None:
    for doc, labels in {
        "odoo-api.md": {"O1.1", "O1.3", "O4.4", "O4.6", "O4.7", "O4.10", "O5.3", "O7", "O8", "O9"},
        "plc-program.md": {"P1", "P2", "P3", "P4", "P5", "P6", "P7"},
        "fins.md": {"F1", "F4", "F5", "F6", "F9", "F10", "F11"},
        "architecture.md": {"A3", "A4", "A6", "A8", "A9"},
    }.items():
        assert labels <= _sections(doc), f"docs/{doc} lacks {sorted(labels - _sections(doc))}"
