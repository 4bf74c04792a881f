"""Every requirement in spec/ is named by at least one test (``@pytest.mark.req``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQ_DEF = re.compile(r"^\s*:id:\s*(REQ_[A-Z0-9_]+)\s*$", re.MULTILINE)
MARK = re.compile(r"mark\.req\(([^)]*)\)")
ID = re.compile(r"REQ_[A-Z0-9_]+")


def spec_requirements() -> set[str]:
    ids: set[str] = set()
    for rst in (ROOT / "spec").rglob("*.rst"):
        if "_build" in rst.parts:
            continue
        ids.update(REQ_DEF.findall(rst.read_text()))
    return ids


def requirements_named_by_tests() -> set[str]:
    ids: set[str] = set()
    for py in (ROOT / "tests").rglob("*.py"):
        for args in MARK.findall(py.read_text()):
            ids.update(ID.findall(args))
    return ids


@pytest.mark.req("REQ_0001")
def test_every_requirement_has_a_test() -> None:
    missing = sorted(spec_requirements() - requirements_named_by_tests())
    assert not missing, f"requirements with no test naming them: {missing}"


@pytest.mark.req("REQ_0001")
def test_every_test_names_an_existing_requirement() -> None:
    unknown = sorted(requirements_named_by_tests() - spec_requirements())
    assert not unknown, f"tests name requirements that spec/ does not define: {unknown}"


@pytest.mark.req("REQ_0001")
def test_every_need_id_is_defined_once() -> None:
    """Two needs with one id: sphinx-needs keeps the first, so the second requirement would
    silently lose its tests (and ``make docs`` fails); caught here, in ``make test``."""
    seen: dict[str, list[str]] = {}
    for rst in (ROOT / "spec").rglob("*.rst"):
        if "_build" in rst.parts:
            continue
        for need in re.findall(r"^\s*:id:\s*([A-Z]+_[A-Z0-9_]+)\s*$", rst.read_text(),
                               re.MULTILINE):
            seen.setdefault(need, []).append(str(rst.relative_to(ROOT)))
    twice = {need: where for need, where in seen.items() if len(where) > 1}
    assert not twice, f"need ids defined more than once: {twice}"
