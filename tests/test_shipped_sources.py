"""What hwsim ships cites sources a user can look up (issue 17, point 3).

A preset, a validation case, a docstring or a page of the docs names the primary
source of a number (a paper and its table, a datasheet, a measurement set), never
the project's internal notes (REFERENCES.md) nor a path outside the repository
(``../shared``): an installed hwsim has neither.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

SHIPPED = ("hwsim", "docs", "workloads", "README.md")
TEXT = (".py", ".md", ".yaml", ".yml", ".txt", ".json", ".toml", ".cfg", ".ini")

# Still pointing outside the repository on this branch, for reasons other helpers of
# issue 17 own: the shipped workloads' citations and trace paths (point 3's workloads),
# and the data folders of the calibration measurements and SpAtten's released traces
# (hwsim/calibrate.py's default folder, a validation case's requires:, the pages
# describing them). Non-strict so that this test turns green as they land.
PENDING = {("REFERENCES.md", "workloads"), ("../shared", "workloads"),
           ("../shared", "hwsim"), ("../shared", "docs")}


def mentions(where: str, needle: str) -> list[str]:
    root = ROOT / where
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT
        and "__pycache__" not in p.parts)
    assert files, where
    out = []
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                out.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    return out


CASES = [pytest.param(needle, where, id=f"{needle}-{where}",
                      marks=[pytest.mark.xfail(strict=False, reason="owned by another "
                                               "part of issue 17 (see PENDING)")]
                      if (needle, where) in PENDING else [])
         for needle in ("REFERENCES.md", "../shared") for where in SHIPPED]


@pytest.mark.parametrize(("needle", "where"), CASES)
def test_no_shipped_file_cites_what_users_do_not_have(needle, where):
    found = mentions(where, needle)
    assert not found, "\n".join(found)


def test_the_check_finds_a_mention():
    """The scan reads the files it should: this test file names both strings."""
    assert mentions("tests/test_shipped_sources.py", "REFERENCES.md")
    assert mentions("tests/test_shipped_sources.py", "../shared")
